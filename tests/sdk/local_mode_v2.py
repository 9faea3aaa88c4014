#!/usr/bin/env python3
"""End-to-end test of the image through the real SageMaker Python SDK v2 in local mode, offline.

    python local_mode_v2.py IMAGE_TAG WORKDIR

Run it with the interpreter `scripts/sdk-venv.sh` prints (sagemaker==2.257.7, docker-compose).
WORKDIR is a scratch directory (e.g. from `mktemp -d`), outside the paths the SDK refuses to
mount (/root, /etc, /var/lib, ~/.aws, ...): everything this script creates goes into a fresh
directory inside it, removed at the end (set SDK_TEST_KEEP=1 to keep it).

Steps, each printing `sdk: <step> ok ...` or `sdk: <step> FAILED: ...`:
  datagen      fire data made by the image itself (`train datagen fire`): JSON train channel,
               CSV (header) validation channel, a headerless CSV of features for batch transform
  fit          Estimator.fit with local file:// channels; model.tar.gz holds manifest.json
  deploy       Estimator.deploy on instance_type="local"; predict with CSVSerializer and with
               JSONSerializer; the endpoint is deleted (its container stops)
  transform    Transformer batch transform, MultiRecord / Line, one output line per input line
  builtin-xgboost  a built-in XGBoost job moved here by its image URI: the built-in's
               hyperparameters (model_kind=xgboost added), label-first CSV train and validation
               channels with its short ContentType `csv`; model.tar.gz holds xgboost-model; the
               endpoint answers CSV probabilities as the built-in does, and the keys a request
               asks for through CustomAttributes (`output=predicted_label,probability`)
  failing-fit  fit with a bad hyperparameter (in a child process whose output is captured): the
               SDK raises, and the output it streamed holds the container's failure reason
  offline      no socket left this machine: connections and name lookups are checked in-process
               (the SDK's telemetry and AWS calls would show up here)
  cleanup      the containers and the network the SDK created are gone
The last line is `sdk: N passed, M failed`; the exit status is 0 only when nothing failed.

No AWS account, credentials or network: region us-east-1 from the environment, the EC2 metadata
lookup disabled, host AWS profiles hidden, telemetry opted out through
SAGEMAKER_USER_CONFIG_OVERRIDE, a role ARN that is never looked up, LocalSession with
local_code, file:// URIs everywhere.
"""

import contextlib
import errno
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

ROLE = "arn:aws:iam::111111111111:role/service-role/LocalModeTestRole"
REGION = "us-east-1"
# The fire ensemble's 18 features in model order (README, "Channels and data formats"); checked
# against the trained model's manifest.
FEATURES = [
    "t_mean", "t_std", "t_max", "t_p95", "t_hot_area_pct", "t_hot_largest_blob_pct",
    "t_grad_mean", "t_grad_std", "t_diff_mean", "t_diff_std", "flow_mag_mean", "flow_mag_std",
    "tproxy_val", "tproxy_delta", "tproxy_vel", "gas_val", "gas_delta", "gas_vel",
]
HYPERPARAMETERS = {"rf_num_trees": 20, "gb_num_round": 20, "seed": 7}
BAD_HYPERPARAMETERS = {"rf_num_trees": "banana", "gb_num_round": 20}
FAILURE_TEXT = "Hyperparameter error:"  # what train writes first in its log line and failure file
TRAIN_ROWS, VALIDATION_ROWS, TRANSFORM_ROWS = 3000, 600, 10000
TRANSFORM_MAX_PAYLOAD_MB = 1  # 10,000 CSV rows are about 1.3 MB: the SDK sends several payloads

# Time limits (seconds). Every wait below is bounded by one of these.
DATAGEN_TIMEOUT = 120
FIT_TIMEOUT = 600
DEPLOY_TIMEOUT = 300  # the SDK itself gives up on /ping after 120 s
TRANSFORM_TIMEOUT = 600
FAILING_FIT_TIMEOUT = 600
DOCKER_CLI_TIMEOUT = 60

NETWORK_NAME = "sagemaker-local"  # the SDK's compose file names its network so
CHILD_FLAG = "--failing-fit-child"


def say(line):
    print(line, flush=True)


class StepFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise StepFailed(message)


# --------------------------------------------------------------------------------------------
# Offline environment, set before the SDK is imported.


def offline_environment(scratch):
    """Environment for an offline LocalSession; returns the SDK config file path."""
    config = os.path.join(scratch, "sagemaker-config.yaml")
    if not os.path.exists(config):
        with open(config, "w") as f:
            f.write(
                "SchemaVersion: '1.0'\n"
                "SageMaker:\n"
                "  PythonSDK:\n"
                "    Modules:\n"
                "      TelemetryOptOut: true\n"
            )
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp, exist_ok=True)
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "USE_SHORT_LIVED_CREDENTIALS",
    ):
        os.environ.pop(name, None)
    os.environ.update({
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # Hide the host's AWS profiles: keys found there would be copied into the containers.
        "AWS_CONFIG_FILE": os.path.join(scratch, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(scratch, "no-aws-credentials"),
        # Telemetry opt-out; the admin override too, so no /etc/xdg config applies.
        "SAGEMAKER_USER_CONFIG_OVERRIDE": config,
        "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": config,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        # The SDK's own temporary files (tarballs, transform output) stay in the scratch dir.
        "TMPDIR": tmp,
    })
    tempfile.tempdir = tmp
    return config


class NetworkGuard:
    """Refuses, and records, any name lookup or TCP/UDP connection to a non-loopback address.

    Installed in this process (and the child), so the SDK's own traffic is covered; docker and
    docker-compose talk to the Docker engine over its Unix socket, which is not affected.
    """

    def __init__(self):
        self.blocked = []

    @staticmethod
    def _local(host):
        if host is None or host in ("", "localhost", "localhost.localdomain", "ip6-localhost"):
            return True
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def install(self):
        guard = self
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex

        def getaddrinfo(host, *args, **kwargs):
            if not guard._local(host):
                guard.blocked.append("name lookup of %s" % (host,))
                raise socket.gaierror(socket.EAI_NONAME, "offline test: lookup of %s refused" % (host,))
            return real_getaddrinfo(host, *args, **kwargs)

        def refuse(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not guard._local(address[0]):
                guard.blocked.append("connection to %s" % (address,))
                return True
            return False

        def connect(sock, address):
            if refuse(sock, address):
                raise OSError(errno.ENETUNREACH, "offline test: connection to %s refused" % (address,))
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if refuse(sock, address):
                return errno.ENETUNREACH
            return real_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex
        return self


# --------------------------------------------------------------------------------------------
# Time limits, docker helpers, cleanup.


class StepTimeout(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds, what):
    """Raises StepTimeout in the main thread after `seconds` (SIGALRM)."""

    def on_alarm(signum, frame):
        raise StepTimeout("%s did not finish within %d s" % (what, seconds))

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def docker(*args, timeout=DOCKER_CLI_TIMEOUT, check_rc=True):
    proc = subprocess.run(
        ["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if check_rc and proc.returncode != 0:
        raise StepFailed("docker %s: exit %d: %s" % (" ".join(args[:3]), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def network_exists():
    out = docker("network", "inspect", NETWORK_NAME, check_rc=False, timeout=30).strip()
    try:
        return bool(json.loads(out or "[]"))  # "[]" (and exit 1) when there is none
    except ValueError:
        return False


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Cleaner:
    """Finds and removes what this run created: containers of the SDK's compose projects (their
    compose files live under our scratch directory), the datagen containers, the network."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.names = []  # datagen container names
        self.network_was_there = network_exists()

    def our_containers(self):
        out = docker(
            "ps", "-a", "--format",
            '{{.ID}}\t{{.Names}}\t{{.Label "com.docker.compose.project.working_dir"}}',
            timeout=30,
        )
        found = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            cid, name, workdir = parts
            if (workdir and (workdir == self.scratch or workdir.startswith(self.scratch + os.sep))) \
                    or name in self.names:
                found.append((cid, name))
        return found

    def remove_containers(self):
        found = self.our_containers()
        if found:
            docker("rm", "-f", *[cid for cid, _ in found], check_rc=False, timeout=120)
        return [name for _, name in found]

    def remove_network(self):
        """Removes the SDK's network when this run created it and nothing else uses it."""
        if self.network_was_there or not network_exists():
            return "absent"
        info = json.loads(docker("network", "inspect", NETWORK_NAME, timeout=30) or "[]")
        if info and info[0].get("Containers"):
            return "kept (other containers attached)"
        docker("network", "rm", NETWORK_NAME, check_rc=False, timeout=60)
        return "removed"


# --------------------------------------------------------------------------------------------
# Steps.


def step_datagen(image, data, cleaner):
    """Generates the data with the image; returns (train_dir, validation_dir, transform_dir, rows)."""
    raw = os.path.join(data, "raw")
    os.makedirs(raw)
    os.chmod(raw, 0o777)  # whatever user the container runs as may write here
    jobs = [
        ("train/fire.json", TRAIN_ROWS, 1, "json"),
        ("validation/fire-validation.csv", VALIDATION_ROWS, 2, "csv"),
        ("transform-labelled.csv", TRANSFORM_ROWS, 3, "csv-label-first"),
    ]
    for out, rows, seed, fmt in jobs:
        name = "sdk-datagen-%d-%d" % (os.getpid(), seed)
        cleaner.names.append(name)
        cmd = [
            "run", "--rm", "--name", name, "--network", "none",
            # As the caller, so the files are the caller's (the image's own user is tested later).
            "--user", "%d:%d" % (os.getuid(), os.getgid()),
            "-v", "%s:/out" % raw, image,
            "train", "datagen", "fire", "--rows", str(rows), "--seed", str(seed),
            "--format", fmt, "--out", "/out/" + out,
        ]
        try:
            proc = subprocess.run(["docker", *cmd], stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=DATAGEN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise StepFailed("docker run ... train datagen took over %d s" % DATAGEN_TIMEOUT)
        check(proc.returncode == 0, "docker %s: exit %d: %s" % (" ".join(cmd), proc.returncode,
                                                              (proc.stderr or proc.stdout).strip()))
    train_dir = os.path.join(raw, "train")
    validation_dir = os.path.join(raw, "validation")
    # Batch transform input: the same rows without the label column (column 0).
    transform_dir = os.path.join(data, "transform")
    os.makedirs(transform_dir)
    rows = []
    with open(os.path.join(raw, "transform-labelled.csv")) as f:
        for line in f:
            fields = line.rstrip("\r\n").split(",")
            check(len(fields) == 19, "transform-labelled.csv: %d fields in a line, expected 19" % len(fields))
            rows.append(fields[1:])
    check(len(rows) == TRANSFORM_ROWS, "datagen wrote %d transform rows, expected %d" % (len(rows), TRANSFORM_ROWS))
    with open(os.path.join(transform_dir, "fire-features.csv"), "w") as f:
        f.writelines(",".join(r) + "\n" for r in rows)
    with open(os.path.join(train_dir, "fire.json")) as f:
        samples = len(json.load(f)["samples"])
    check(samples == TRAIN_ROWS, "fire.json holds %d samples, expected %d" % (samples, TRAIN_ROWS))
    return (train_dir, validation_dir, transform_dir, rows), (
        "train: %d rows JSON, validation: %d rows CSV with header, transform: %d rows CSV; made by %s"
        % (TRAIN_ROWS, VALIDATION_ROWS, TRANSFORM_ROWS, image))


def make_session(container_root, serving_port):
    from sagemaker.local import LocalSession

    session = LocalSession()
    # No container_config: the image must work with the SDK's own mounts and user.
    session.config = {
        "local": {
            "local_code": True,
            "container_root": container_root,  # the SDK's temporary trees, under our scratch
            "serving_port": serving_port,      # a free port, not necessarily 8080
        }
    }
    return session


def make_estimator(image, session, output_dir, hyperparameters, instance_count=1):
    from sagemaker.estimator import Estimator

    return Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=instance_count,
        instance_type="local",
        output_path="file://" + output_dir,
        hyperparameters=hyperparameters,
        sagemaker_session=session,
        base_job_name="sdk-local-mode",
    )


def channels(train_dir, validation_dir):
    from sagemaker.inputs import TrainingInput

    return {
        "train": TrainingInput("file://" + train_dir, content_type="application/json"),
        "validation": TrainingInput("file://" + validation_dir, content_type="text/csv"),
    }


def tar_members(path):
    with tarfile.open(path) as tar:
        return sorted(m.name.lstrip("./") for m in tar.getmembers() if m.isfile())


def read_member(path, name):
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if m.name.lstrip("./") == name:
                return tar.extractfile(m).read().decode("utf-8", "replace")
    return None


def step_fit(image, session, train_dir, validation_dir, output_dir):
    estimator = make_estimator(image, session, output_dir, HYPERPARAMETERS)
    with deadline(FIT_TIMEOUT, "Estimator.fit"):
        estimator.fit(channels(train_dir, validation_dir), wait=True, logs=True)
    model_tar = os.path.join(output_dir, "model.tar.gz")
    check(os.path.isfile(model_tar), "no model.tar.gz in %s (found: %s)" % (output_dir, sorted(os.listdir(output_dir))))
    check(estimator.model_data == "file://" + model_tar,
          "estimator.model_data is %r, expected file://%s" % (estimator.model_data, model_tar))
    members = tar_members(model_tar)
    check("manifest.json" in members, "model.tar.gz holds no manifest.json: %s" % sorted(members))
    manifest = json.loads(read_member(model_tar, "manifest.json"))
    check(manifest.get("model_kind") == "fire_ensemble", "manifest model_kind %r" % manifest.get("model_kind"))
    check(manifest.get("feature_names") == FEATURES,
          "manifest feature_names differ from the README's order: %s" % manifest.get("feature_names"))
    output_tar = os.path.join(output_dir, "output.tar.gz")
    check(os.path.isfile(output_tar), "no output.tar.gz in %s" % output_dir)
    out_members = tar_members(output_tar)
    check("success" in out_members and "failure" not in out_members,
          "output.tar.gz: expected success and no failure, found %s" % sorted(out_members))
    return estimator, (
        "%s; model.tar.gz: %d files incl. manifest.json (fire_ensemble, the README's 18 features); "
        "output.tar.gz: %s" % (estimator.model_data, len(members), ", ".join(out_members)))


def step_fit_two_hosts(image, session, train_dir, validation_dir, output_dir):
    """instance_count=2: both containers train through XGBoost's collective, the first writes
    the one model, and neither exits before the other (local mode stops all at the first exit)."""
    estimator = make_estimator(image, session, output_dir, dict(HYPERPARAMETERS, nthread=1),
                               instance_count=2)
    with deadline(FIT_TIMEOUT, "Estimator.fit (2 instances)"):
        estimator.fit(channels(train_dir, validation_dir), wait=True, logs=True)
    model_tar = os.path.join(output_dir, "model.tar.gz")
    check(os.path.isfile(model_tar), "no model.tar.gz in %s (found: %s)" % (output_dir, sorted(os.listdir(output_dir))))
    members = tar_members(model_tar)
    check(members.count("manifest.json") == 1, "model.tar.gz: %s" % sorted(members))
    manifest = json.loads(read_member(model_tar, "manifest.json"))
    rows = manifest.get("rows") or {}
    check(sum(rows.values()) == TRAIN_ROWS + VALIDATION_ROWS,
          "the model counts %s rows, the channels hold %d" % (rows, TRAIN_ROWS + VALIDATION_ROWS))
    return None, "model.tar.gz with one manifest.json, rows %s over both hosts" % rows


BUILTIN_HYPERPARAMETERS = {
    "model_kind": "xgboost", "num_round": 30, "max_depth": 4, "eta": 0.3,
    "objective": "binary:logistic", "eval_metric": "logloss,auc", "early_stopping_rounds": 5,
}


def step_builtin_xgboost(image, session, labelled, output_dir):
    """A built-in XGBoost job (label-first CSV, its hyperparameters) fitted, deployed, asked."""
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.inputs import TrainingInput
    from sagemaker.serializers import CSVSerializer

    with open(labelled) as f:
        lines = f.read().splitlines()
    base = os.path.join(os.path.dirname(labelled), "builtin")
    split = len(lines) * 4 // 5
    for name, part in (("train", lines[:split]), ("validation", lines[split:])):
        os.makedirs(os.path.join(base, name))
        with open(os.path.join(base, name, "part-0.csv"), "w") as f:
            f.writelines(line + "\n" for line in part)
    estimator = make_estimator(image, session, output_dir, BUILTIN_HYPERPARAMETERS)
    with deadline(FIT_TIMEOUT, "Estimator.fit (built-in XGBoost hyperparameters)"):
        estimator.fit({name: TrainingInput("file://" + os.path.join(base, name), content_type="csv")
                       for name in ("train", "validation")}, wait=True, logs=True)
    members = tar_members(os.path.join(output_dir, "model.tar.gz"))
    check("xgboost-model" in members and "manifest.json" in members,
          "model.tar.gz: expected xgboost-model and manifest.json, found %s" % members)
    rows = [[float(v) for v in line.split(",")[1:]] for line in lines[split:split + 3]]
    predictor = None
    try:
        with deadline(DEPLOY_TIMEOUT, "deploy and predict (built-in XGBoost)"):
            predictor = estimator.deploy(initial_instance_count=1, instance_type="local",
                                         serializer=CSVSerializer(), deserializer=CSVDeserializer(),
                                         wait=False)
            # The built-in's default answer: the records' probabilities on one CSV line.
            flat = [float(v) for row in predictor.predict(rows) for v in row]
            check(len(flat) == 3 and all(0.0 <= p <= 1.0 for p in flat),
                  "default answer: expected 3 probabilities, got %r" % flat)
            keyed = predictor.predict(
                rows, initial_args={"CustomAttributes": "output=predicted_label,probability"})
            check(len(keyed) == 3, "keyed answer: expected 3 rows, got %r" % keyed)
            for row, p in zip(keyed, flat):
                label, probability = int(float(row[0])), float(row[1])
                check(abs(probability - p) < 1e-6 and label == (1 if p > 0.5 else 0),
                      "keyed row %r disagrees with probability %s" % (row, p))
    finally:
        if predictor is not None:
            predictor.delete_endpoint()
    return None, ("model.tar.gz: %s; default answer %s; with output=predicted_label,probability: %s"
                  % (", ".join(members), ",".join("%.4f" % p for p in flat), keyed))


def parse_csv_answer(text_rows, n, where):
    """Checks n CSV answer rows `prediction,probability,member probabilities...`."""
    check(len(text_rows) == n, "%s: %d answer rows for %d records: %r" % (where, len(text_rows), n, text_rows[:3]))
    out = []
    for row in text_rows:
        check(len(row) >= 2, "%s: answer row %r has fewer than 2 fields" % (where, row))
        try:
            pred, prob = int(row[0]), float(row[1])
            members = [float(v) for v in row[2:]]
        except ValueError:
            raise StepFailed("%s: non-numeric answer row %r" % (where, row))
        sane_record(pred, prob, members, where)
        out.append((pred, prob))
    return out


def sane_record(pred, prob, members, where, threshold=0.5):
    check(pred in (0, 1), "%s: prediction %r is not 0 or 1" % (where, pred))
    check(0.0 <= prob <= 1.0, "%s: probability %r is outside [0, 1]" % (where, prob))
    check(pred == (1 if prob > threshold else 0),
          "%s: prediction %d disagrees with probability %s and threshold %s" % (where, pred, prob, threshold))
    for p in members:
        check(0.0 <= p <= 1.0, "%s: member probability %r is outside [0, 1]" % (where, p))


def step_deploy(estimator, rows):
    from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
    from sagemaker.serializers import CSVSerializer, JSONSerializer

    predictor = None
    try:
        with deadline(DEPLOY_TIMEOUT, "Estimator.deploy and the predictions"):
            t0 = time.monotonic()
            # wait=False: in local mode create_endpoint itself returns only once /ping answers 200
            # (or raises after 120 s); wait=True would then sleep a fixed 30 s poll interval
            # before its first DescribeEndpoint.
            predictor = estimator.deploy(
                initial_instance_count=1, instance_type="local",
                serializer=CSVSerializer(), deserializer=CSVDeserializer(), wait=False,
            )
            status = estimator.sagemaker_session.sagemaker_client.describe_endpoint(
                EndpointName=predictor.endpoint_name)["EndpointStatus"]
            check(status == "InService", "endpoint status %r after deploy" % status)
            say("sdk: deploy-endpoint ok (%s %s after %.1f s)" % (predictor.endpoint_name, status, time.monotonic() - t0))

            # CSV: one row, then three rows in one request.
            floats = [[float(v) for v in r] for r in rows[:3]]
            one = parse_csv_answer(predictor.predict(floats[0]), 1, "CSV single row")
            three = parse_csv_answer(predictor.predict(floats), 3, "CSV three rows")
            check(abs(one[0][1] - three[0][1]) < 1e-9, "the same row answered %s alone and %s in a batch" % (one[0], three[0]))
            say("sdk: predict-csv ok (text/csv in and out; row 1: prediction %d, probability %.4f; 3-row request: %s)"
                % (one[0][0], one[0][1], [p for p, _ in three]))

            # JSON: a flat record of the 18 named features; and {"instances": [...]}.
            predictor.serializer = JSONSerializer()
            predictor.deserializer = JSONDeserializer()
            record = dict(zip(FEATURES, floats[0]))
            answer = predictor.predict(record)
            check(isinstance(answer, dict) and isinstance(answer.get("predictions"), list)
                  and len(answer["predictions"]) == 1, "JSON answer shape: %r" % (answer,))
            rec = answer["predictions"][0]
            try:
                pred, prob = rec["ensemble_prediction"], rec["ensemble_probability"]
                members = list(rec.get("individual_probabilities", {}).values())
            except (KeyError, TypeError):
                raise StepFailed("JSON answer record lacks ensemble_prediction/probability: %r" % (rec,))
            sane_record(pred, prob, members, "JSON record")
            check(pred == one[0][0] and abs(prob - one[0][1]) < 1e-6,
                  "JSON and CSV answers differ for the same row: %s vs %s" % ((pred, prob), one[0]))
            batch = predictor.predict({"instances": [dict(zip(FEATURES, r)) for r in floats]})
            check(len(batch.get("predictions", [])) == 3, "JSON instances answer: %r" % (batch,))
            say("sdk: predict-json ok (application/json in and out; same answer as CSV: prediction %d, probability %.4f; "
                "members %s)" % (pred, prob, sorted(rec.get("individual_probabilities", {}))))
    finally:
        if predictor is not None:
            with deadline(120, "deleting the endpoint"):
                predictor.delete_endpoint()
                with contextlib.suppress(Exception):
                    predictor.delete_model()
    return None, "endpoint deleted"


def step_transform(estimator, transform_dir, output_dir, n_rows):
    transformer = estimator.transformer(
        instance_count=1, instance_type="local", strategy="MultiRecord", assemble_with="Line",
        accept="text/csv", output_path="file://" + output_dir, max_payload=TRANSFORM_MAX_PAYLOAD_MB,
    )
    with deadline(TRANSFORM_TIMEOUT, "Transformer.transform"):
        # logs=False: in local mode logs=True (the default) asks CloudWatch Logs for the job's log.
        transformer.transform(data="file://" + transform_dir, content_type="text/csv",
                              split_type="Line", wait=False)
        transformer.wait(logs=False)
    out_path = os.path.join(output_dir, "fire-features.csv.out")
    check(os.path.isfile(out_path), "no fire-features.csv.out in %s (found %s)" % (output_dir, sorted(os.listdir(output_dir))))
    with open(out_path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline
    answers = [l for l in lines if l.strip()]
    blanks = len(lines) - len(answers)
    in_size = os.path.getsize(os.path.join(transform_dir, "fire-features.csv"))
    payloads_max = in_size // (TRANSFORM_MAX_PAYLOAD_MB * 1024 * 1024) + 1
    check(len(answers) == n_rows, "%d answer lines for %d input lines" % (len(answers), n_rows))
    # The SDK (local mode) writes b"\n" after every payload's answer, which already ends in "\n"
    # (one newline-terminated line per record, as SageMaker's XGBoost in batch mode): that makes
    # one blank line per payload in the assembled file, nothing else.
    check(blanks <= payloads_max, "%d blank lines in the output, more than the %d payloads" % (blanks, payloads_max))
    parse_csv_answer([l.split(",") for l in answers], n_rows, "transform output")
    return None, ("%d input lines -> %d answer lines, each sane; %d blank line(s), the SDK's "
                  "AssembleWith=Line newline after each payload; input %.2f MB sent as <= %d MB payloads"
                  % (n_rows, len(answers), blanks, in_size / 1e6, TRANSFORM_MAX_PAYLOAD_MB))


def step_failing_fit(image, scratch, train_dir, validation_dir, output_dir, serving_port, guard):
    """Runs the failing fit in a child process and inspects everything it printed."""
    cmd = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, image, scratch,
           train_dir, validation_dir, output_dir, str(serving_port)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=FAILING_FIT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise StepFailed("the failing fit took over %d s; output so far:\n%s"
                         % (FAILING_FIT_TIMEOUT, (e.output or b"").decode("utf-8", "replace")[-4000:]))
    out = proc.stdout.decode("utf-8", "replace")
    log_path = os.path.join(scratch, "failing-fit.log")
    with open(log_path, "w") as f:
        f.write(out)
    for line in out.splitlines():
        say("  | " + line)
    guard.blocked.extend("(child) " + l[len("sdk-child: blocked "):]
                         for l in out.splitlines() if l.startswith("sdk-child: blocked "))
    check(proc.returncode == 0, "child exited %d (see the lines above)" % proc.returncode)
    check("sdk-child: fit raised" in out, "the SDK did not raise for a bad hyperparameter")
    reason = [ANSI.sub("", l) for l in out.splitlines() if FAILURE_TEXT in l and "sdk-child" not in l]
    check(reason, "the SDK's output holds no container log line with %r" % FAILURE_TEXT)
    check("rf_num_trees" in reason[0] and "banana" in reason[0],
          "the failure reason does not name the key and the value: %r" % reason[0])
    # The SDK copies /opt/ml/output into output.tar.gz even when the job fails.
    output_tar = os.path.join(output_dir, "output.tar.gz")
    check(os.path.isfile(output_tar), "no output.tar.gz for the failed job")
    failure = read_member(output_tar, "failure")
    check(failure is not None and failure.startswith(FAILURE_TEXT),
          "output.tar.gz: failure file %r does not start with %r" % (failure, FAILURE_TEXT))
    model_tar = os.path.join(output_dir, "model.tar.gz")
    if os.path.isfile(model_tar):
        members = tar_members(model_tar)
        check("manifest.json" not in members, "the failed job left a model: %s" % sorted(members))
    raised = [l for l in out.splitlines() if l.startswith("sdk-child: fit raised")][0]
    raised = re.sub(r"Failed to run: \[.*\]\.", "Failed to run: [docker-compose ... up ...].", raised)
    return None, ("%s; the container's log line in the SDK's output: %r; failure file in output.tar.gz: %r"
                  % (raised[len("sdk-child: "):], reason[0].strip()[:200], failure.strip()[:200]))


def failing_fit_child(argv):
    """Child process: one fit with a bad hyperparameter; reports what the SDK did."""
    image, scratch, train_dir, validation_dir, output_dir, port = argv
    offline_environment(scratch)
    guard = NetworkGuard().install()
    session = make_session(os.path.join(scratch, "sdk-tmp"), int(port))
    estimator = make_estimator(image, session, output_dir, BAD_HYPERPARAMETERS)
    code = 0
    try:
        with deadline(FIT_TIMEOUT, "Estimator.fit"):
            estimator.fit(channels(train_dir, validation_dir), wait=True, logs=True)
        print("sdk-child: fit returned without raising", flush=True)
        code = 3
    except StepTimeout as e:
        print("sdk-child: %s" % e, flush=True)
        code = 4
    except Exception as e:  # what the SDK raises is the point of the test
        print("sdk-child: fit raised %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""), flush=True)
    for b in guard.blocked:
        print("sdk-child: blocked %s" % b, flush=True)
    return code


# --------------------------------------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refuse_sensitive(path):
    home = os.path.expanduser("~")
    for p in ("/etc", "/root", "/var/lib", os.path.join(home, ".aws"), os.path.join(home, ".ssh"),
              os.path.join(home, ".config"), os.path.join(home, ".docker"), os.path.join(home, ".kube")):
        p = os.path.realpath(p)
        if path == p or path.startswith(p):
            # The SDK compares with startswith too (so /rootfs counts as /root).
            return p
    return None


def main(argv):
    if len(argv) >= 1 and argv[0] == CHILD_FLAG:
        return failing_fit_child(argv[1:])
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: python local_mode_v2.py IMAGE_TAG WORKDIR", file=sys.stderr)
        return 2
    image, workdir = argv
    started = time.monotonic()
    workdir = os.path.realpath(workdir)
    if not os.path.isdir(workdir):
        print("sdk: WORKDIR %s is not a directory" % workdir, file=sys.stderr)
        return 2
    bad = refuse_sensitive(workdir)
    if bad:
        print("sdk: WORKDIR %s is under %s, which SageMaker local mode refuses to mount; "
              "use a directory from mktemp -d" % (workdir, bad), file=sys.stderr)
        return 2
    if shutil.which("docker") is None:
        print("sdk: docker is required", file=sys.stderr)
        return 2
    present = subprocess.run(["docker", "image", "inspect", image], stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=DOCKER_CLI_TIMEOUT).returncode == 0
    if not present:
        print("sdk: image %s is not present locally (local mode would try to pull it)" % image, file=sys.stderr)
        return 2

    scratch = tempfile.mkdtemp(prefix="sdk-local-mode-", dir=workdir)
    os.chmod(scratch, 0o755)
    offline_environment(scratch)
    guard = NetworkGuard().install()
    cleaner = Cleaner(scratch)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run_steps(image, scratch, guard, cleaner, started)
    finally:
        # Also on Ctrl-C, SIGTERM or an unexpected error: no container, network or file stays.
        with contextlib.suppress(Exception):
            cleaner.remove_containers()
            cleaner.remove_network()
        if os.environ.get("SDK_TEST_KEEP") == "1":
            say("sdk: kept %s (SDK_TEST_KEEP=1)" % scratch)
        else:
            # As root this also removes what the containers wrote as root.
            shutil.rmtree(scratch, ignore_errors=True)
            if os.path.exists(scratch):
                say("sdk: could not remove all of %s (files owned by another user?)" % scratch)


def run_steps(image, scratch, guard, cleaner, started):
    serving_port = free_port()
    import sagemaker  # after the environment is set
    from sagemaker.local.image import _SageMakerContainer

    compose = " ".join(_SageMakerContainer._get_compose_cmd_prefix())  # what local mode will run
    say("sdk: sagemaker %s, image %s, scratch %s, serving port %d, compose: %s"
        % (sagemaker.__version__, image, scratch, serving_port, compose))
    session = make_session(os.path.join(scratch, "sdk-tmp"), serving_port)
    os.makedirs(os.path.join(scratch, "sdk-tmp"))

    results = []  # (step, ok)

    def run(step, fn, *args):
        t0 = time.monotonic()
        try:
            value, message = fn(*args)
            results.append((step, True))
            say("sdk: %s ok (%s) [%.1f s]" % (step, message, time.monotonic() - t0))
            return value
        except (StepFailed, StepTimeout) as e:
            say("sdk: %s FAILED: %s" % (step, e))
        except Exception as e:  # an SDK error: show what it said
            say("sdk: %s FAILED: %s: %s" % (step, type(e).__name__, e))
        finally:
            try:
                left = cleaner.remove_containers()
                if left and step != "datagen":
                    # The SDK stops its containers but never removes them.
                    say("sdk: %s: removed left-over containers %s" % (step, left))
            except Exception as e:  # reported by the cleanup step at the latest
                say("sdk: %s: could not list or remove containers: %s" % (step, e))
        results.append((step, False))
        return None

    def skipped(step, why):
        say("sdk: %s FAILED: skipped, %s" % (step, why))
        results.append((step, False))

    data = os.path.join(scratch, "data")
    os.makedirs(data)
    generated = run("datagen", step_datagen, image, data, cleaner)
    estimator = None
    if generated:
        train_dir, validation_dir, transform_dir, rows = generated
        estimator = run("fit", step_fit, image, session, train_dir, validation_dir,
                        os.path.join(scratch, "out-fit"))
        if estimator:
            run("deploy", step_deploy, estimator, rows)
            os.makedirs(os.path.join(scratch, "out-transform"))
            run("transform", step_transform, estimator, transform_dir,
                os.path.join(scratch, "out-transform"), len(rows))
            run("builtin-xgboost", step_builtin_xgboost, image, session,
                os.path.join(data, "raw", "transform-labelled.csv"), os.path.join(scratch, "out-builtin"))
            run("fit-two-hosts", step_fit_two_hosts, image, session, train_dir, validation_dir,
                os.path.join(scratch, "out-two-hosts"))
        else:
            skipped("deploy", "no model")
            skipped("transform", "no model")
            skipped("builtin-xgboost", "no data")
            skipped("fit-two-hosts", "no data")
        run("failing-fit", step_failing_fit, image, scratch, train_dir, validation_dir,
            os.path.join(scratch, "out-failing"), serving_port, guard)
    else:
        for step in ("fit", "deploy", "transform", "builtin-xgboost", "fit-two-hosts", "failing-fit"):
            skipped(step, "no data")

    def step_offline():
        check(not guard.blocked, "the SDK tried to reach the network: %s" % "; ".join(guard.blocked[:5]))
        return None, "no name lookup or connection beyond loopback, in this process or the child"

    run("offline", step_offline)

    def step_cleanup():
        left = cleaner.remove_containers()
        remaining = cleaner.our_containers()
        check(not remaining, "containers still present: %s" % remaining)
        net = cleaner.remove_network()
        return None, ("containers: %s; network %s: %s"
                      % ("none left" if not left else "removed %s" % left, NETWORK_NAME, net))

    run("cleanup", step_cleanup)

    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    say("sdk: total %.1f s" % (time.monotonic() - started))
    say("sdk: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
