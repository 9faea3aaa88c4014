"""Multi-model endpoint figures for one model directory, printed next to their references.

usage: python3 bench/mme.py SERVE_BINARY IMAGE MODEL_DIR LABEL

- load time: POST /models of MODEL_DIR under 50 new names on the host (release binary);
- capacity: the image with --memory 1g loads MODEL_DIR under new names until 507; the container
  must not be OOM-killed;
- latency: single-record requests to one loaded model and to a random loaded model per request
  (each request then finds its model's trees out of the CPU caches) of the full container, next
  to the same image serving the same model as a single-model endpoint (same limits, same client);
- the anchors' stand-in: a Python process that imports xgboost and loads the model's XGBoost
  files (what each Multi Model Server worker holds at least, one worker per model).
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time

serve_bin, image, model_dir, label = sys.argv[1:5]
model_dir = os.path.abspath(model_dir)
PAYLOAD = open(os.path.join(os.path.dirname(__file__), "..", "sample-payloads", "fire-single.csv"), "rb").read()


def request(conn, method, path, body=b"", headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def wait_ready(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if request(c, "GET", "/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"nothing answered /ping on {port}")


def load(conn, name, url):
    body = json.dumps({"model_name": name, "url": url}).encode()
    return request(conn, "POST", "/models", body, {"Content-Type": "application/json"})


def latencies(port, paths, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for i in range(n):
        path = paths[i % len(paths)] if len(paths) < 2 else random.choice(paths)
        t = time.perf_counter()
        status, _ = request(c, "POST", path, PAYLOAD, {"Content-Type": "text/csv"})
        out.append(time.perf_counter() - t)
        assert status == 200, status
    return [t * 1e6 for t in out]


def load_times():
    port = 18290
    p = subprocess.Popen([serve_bin, "serve"], env={**os.environ, "SAGEMAKER_MULTI_MODEL": "true",
                         "SAGEMAKER_BIND_TO_PORT": str(port)}, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times = []
        for i in range(50):
            t = time.perf_counter()
            status, body = load(c, f"m{i}", model_dir)
            times.append((time.perf_counter() - t) * 1e3)
            assert status == 200, body
        times.sort()
        print(f"{label}: POST /models load time on the host: median {statistics.median(times):.1f} ms, "
              f"max {times[-1]:.1f} ms over 50 loads (goal <= 20 ms)")
    finally:
        p.terminate()
        p.wait()


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def container(*args):
    cid = docker("run", "-d", "--memory", "1g", "--memory-swap", "1g", "-p", "127.0.0.1::8080", *args)
    port = int(docker("port", cid, "8080/tcp").splitlines()[0].rsplit(":", 1)[1])
    wait_ready(port)
    return cid, port


def capacity_and_latency():
    cid, port = container("-e", "SAGEMAKER_MULTI_MODEL=true", "-v", f"{model_dir}:/opt/ml/models/fire/model:ro",
                          image, "serve")
    single = None
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        while True:
            status, body = load(c, f"fire-{n}", "/opt/ml/models/fire/model")
            if status != 200:
                break
            n += 1
        oom = docker("inspect", "-f", "{{.State.OOMKilled}}", cid)
        rss = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", cid)
        print(f"{label}: 1 GiB container held {n} models, then {status}: {json.loads(body)['message']}")
        print(f"{label}: container memory {rss}, OOM-killed: {oom} (goal >= 500 models)")
        paths = [f"/models/fire-{i}/invoke" for i in range(n)]
        single, sport = container("-v", f"{model_dir}:/opt/ml/model:ro", image, "serve")
        # Rounds alternate between the three cases so drift on the host (the Docker proxy, CPU
        # frequency) falls on all of them alike; percentiles are over every round's requests.
        cases = {"one": (port, paths[:1]), "random": (port, paths), "single": (sport, ["/invocations"])}
        samples = {k: [] for k in cases}
        for case, (p, ps) in cases.items():
            latencies(p, ps, 300)  # warm-up
        for _ in range(8):
            for case, (p, ps) in cases.items():
                samples[case] += latencies(p, ps, 400)
        q = {k: (statistics.median(v), sorted(v)[int(len(v) * 0.99)]) for k, v in samples.items()}
        one, same, mme = q["single"], q["one"], q["random"]
        print(f"{label}: single-record latency, {n} models loaded, one model asked: "
              f"p50 {same[0]:.0f} us, p99 {same[1]:.0f} us")
        print(f"{label}: single-record latency, {n} models loaded, random model per request: "
              f"p50 {mme[0]:.0f} us, p99 {mme[1]:.0f} us")
        print(f"{label}: single-record latency, single-model endpoint, same image and limits: "
              f"p50 {one[0]:.0f} us, p99 {one[1]:.0f} us  (p50 ratios: one model {same[0] / one[0]:.2f}, "
              f"random model {mme[0] / one[0]:.2f}; goal within 1.10)")
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        if single:
            subprocess.run(["docker", "rm", "-f", single], capture_output=True)


def python_worker_stand_in():
    code = """
import glob, os, sys, xgboost
boosters = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.ubj'))):
    b = xgboost.Booster(); b.load_model(f); boosters.append(b)
rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]
print(len(boosters), int(rss) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code, model_dir], check=True, capture_output=True, text=True)
    files, mib = out.stdout.split()
    print(f"{label}: stand-in for one Multi Model Server worker (Python + xgboost + the model's {files} "
          f"XGBoost files): {mib} MiB resident, i.e. at most {1024 // int(mib)} models per GiB before "
          f"MMS's own frontend (JVM) and handler")


load_times()
capacity_and_latency()
python_worker_stand_in()
