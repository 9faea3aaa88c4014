//! The image on the real Docker engine, under the conditions SageMaker creates: `/opt/ml` mounted,
//! the model mounted read-only, a read-only root filesystem, `docker stop`, two hosts.
//!
//! The image is named by `TEST_IMAGE` (scripts/test.sh builds it with docker/build-offline.sh).
//! Without it the tests are skipped with a message, except under `CI=true`, where they fail.

use common::artifact::Manifest;
use common::datagen::{self, iops as gen, Layout};
use e2e::{fire_bytes, http_request, sample_payload, text, Reply, Sandbox, SMALL_MODELS};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The image under test, or `None` (skip) when Docker tests were not asked for outside CI.
fn image() -> Option<String> {
    e2e::provisioned(
        "TEST_IMAGE",
        "the image, built with docker/build-offline.sh",
    )
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// `docker` that must succeed; returns its stdout, trimmed.
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_owned()
}

/// A sandbox anyone may write into, so these tests also pass for an image run with `--user`
/// (the mounts SageMaker's SDK really makes are reproduced by `SdkLayout`).
fn writable_sandbox() -> Sandbox {
    let s = Sandbox::new();
    let status = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(s.opt_ml.root())
        .status()
        .unwrap();
    assert!(status.success());
    s
}

fn chmod_all(s: &Sandbox) {
    Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(s.opt_ml.root())
        .status()
        .unwrap();
}

fn mount(s: &Sandbox) -> String {
    format!("{}:/opt/ml", s.opt_ml.root().display())
}

/// A container removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

impl Container {
    fn run(args: &[&str]) -> Self {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        Self(docker_ok(&all))
    }

    /// The host port published for the container port `port`.
    fn host_port(&self, port: u16) -> u16 {
        let mapping = docker_ok(&["port", &self.0, &format!("{port}/tcp")]);
        let first = mapping.lines().next().unwrap_or_default();
        first.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", &self.0]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// Waits for `/ping` to answer 200 on the host port, for up to 20 s.
    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_request(port, "GET", "/ping", &[], b"").is_ok_and(|r| r.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the container never answered /ping; logs:\n{}", self.logs());
    }

    /// `docker stop` (SIGTERM, then SIGKILL after 10 s); returns how long it took and the exit code.
    fn stop(&self) -> (Duration, i64) {
        let start = Instant::now();
        docker_ok(&["stop", "-t", "10", &self.0]);
        let took = start.elapsed();
        let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &self.0]);
        (took, code.parse().unwrap())
    }

    fn wait_exit(&self) -> i64 {
        docker_ok(&["wait", &self.0]).parse().unwrap()
    }
}

fn post(port: u16, content_type: &str, accept: &str, body: &[u8]) -> Reply {
    http_request(
        port,
        "POST",
        "/invocations",
        &[("Content-Type", content_type), ("Accept", accept)],
        body,
    )
    .unwrap()
}

#[test]
fn image_is_small_and_declares_the_contract() {
    let Some(image) = image() else { return };
    let size: f64 = docker_ok(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .unwrap();
    let mb = size / 1e6;
    println!("image {image}: {mb:.1} MB");
    eprintln!("image {image}: {mb:.1} MB (goal <= 60 MB)");
    assert!(mb <= 60.0, "image is {mb:.1} MB");
    let config = |f: &str| docker_ok(&["image", "inspect", "-f", f, &image]);
    // No command: `serve auto` trains or serves by what /opt/ml holds.
    assert_eq!(config("{{json .Config.Cmd}}"), r#"["serve","auto"]"#);
    assert_eq!(config("{{json .Config.Entrypoint}}"), "null");
    // Root, as AWS's images (the mounts may be root-owned 0700); `serve` drops it once loaded.
    assert_eq!(config("{{.Config.User}}"), "0:0");
    for capability in ["accept-bind-to-port", "multi-models"] {
        let label = format!(
            r#"{{{{index .Config.Labels "com.amazonaws.sagemaker.capabilities.{capability}"}}}}"#
        );
        assert_eq!(config(&label), "true", "{capability}");
    }
    // Nothing baked under /opt/ml; both commands on PATH.
    let c = Container(docker_ok(&["create", &image]));
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {} | tar -t", c.0))
        .output()
        .unwrap();
    let files = text(&listing.stdout);
    assert!(!files.lines().any(|l| l.starts_with("opt/ml")), "{files}");
    for bin in ["usr/local/bin/train", "usr/local/bin/serve"] {
        assert!(files.lines().any(|l| l == bin), "{bin} missing");
    }
}

#[test]
fn trains_every_model_kind_inside_the_container_and_fails_cleanly_on_a_bad_hyperparameter() {
    let Some(image) = image() else { return };
    let fire = writable_sandbox();
    fire.config("hyperparameters.json", &format!("{{{SMALL_MODELS}}}"));
    fire.data_file("train", "fire.json", &fire_bytes(3000, 3, Layout::Json));
    let iops = writable_sandbox();
    iops.config("hyperparameters.json", r#"{"model_kind": "iops"}"#);
    let insights = gen::insights(&mut datagen::rng(4), 3000);
    let mut bytes = Vec::new();
    gen::write(&insights, gen::IopsLayout::Csv, &mut bytes).unwrap();
    iops.data_file("train", "training-data.csv", &bytes);
    let tabular = writable_sandbox();
    tabular.config(
        "hyperparameters.json",
        r#"{"model_kind": "tabular", "rf_num_trees": "20"}"#,
    );
    tabular.data_file("train", "housing.csv.gz", &housing_csv());
    for (s, kind) in [
        (&fire, "fire_ensemble"),
        (&iops, "iops"),
        (&tabular, "tabular"),
    ] {
        chmod_all(s);
        let out = docker(&["run", "--rm", "-v", &mount(s), &image, "train"]);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("metric: test:"), "{kind}");
        // Written by the container's user, readable here.
        let m = Manifest::load(&s.opt_ml.model_dir()).unwrap();
        assert_eq!(m.model_kind, kind);
        for p in &m.payloads {
            std::fs::read(s.opt_ml.model_dir().join(&p.file)).unwrap();
        }
        assert!(s.opt_ml.output_data_dir().join("evaluation.json").is_file());
        assert!(s.opt_ml.success_file().exists());
    }

    let bad = writable_sandbox();
    bad.config(
        "hyperparameters.json",
        r#"{"model_kind": "iops", "eta": "fast"}"#,
    );
    bad.data_file("train", "training-data.csv", &bytes);
    chmod_all(&bad);
    let out = docker(&["run", "--rm", "-v", &mount(&bad), &image, "train"]);
    assert!(!out.status.success());
    let reason = bad.failure_reason().expect("failure file");
    assert!(reason.contains("eta"), "{reason}");
    assert!(!bad.opt_ml.model_dir().join("manifest.json").exists());
}

/// California housing, target first, no header, gzipped (`datasets/`; `train` reads `.gz`).
/// A small model of `kind` (`fire`, `iops` or `tabular`) trained on the host, readable by the
/// container.
fn housing_csv() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datasets/california_housing_targetfirst.csv.gz"
    ))
    .unwrap()
}

fn host_trained(kind: &str) -> Sandbox {
    let s = writable_sandbox();
    e2e::train_small_model(&s, kind);
    chmod_all(&s);
    s
}

fn model_mount(s: &Sandbox) -> String {
    format!("{}:/opt/ml/model:ro", s.opt_ml.model_dir().display())
}

#[test]
fn serves_from_a_read_only_model_and_root_with_every_sample_payload() {
    let Some(image) = image() else { return };
    for (kind, samples) in [
        (
            "fire",
            vec![
                ("fire-single.json", "application/json", 1),
                ("fire-features.json", "application/json", 1),
                ("fire-instances.json", "application/json", 5),
                ("fire-arrays.json", "application/json", 5),
                ("fire-single.csv", "text/csv", 1),
                ("fire-batch.csv", "text/csv", 5),
                ("fire-batch.jsonl", "application/jsonlines", 5),
            ],
        ),
        (
            "iops",
            vec![
                ("iops-insight.json", "application/json", 1),
                ("iops-features.json", "application/json", 1),
                ("iops-single.csv", "text/csv", 1),
                ("iops-batch.csv", "text/csv", 8),
                ("iops-batch.jsonl", "application/jsonlines", 8),
            ],
        ),
        (
            "tabular",
            vec![
                ("housing-single.csv", "text/csv", 1),
                ("housing-batch.csv", "text/csv", 5),
                ("housing-instances.json", "application/json", 3),
                ("housing-batch.jsonl", "application/jsonlines", 5),
            ],
        ),
    ] {
        let s = host_trained(kind);
        let c = Container::run(&[
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-v",
            &model_mount(&s),
            "-p",
            "127.0.0.1::8080",
            &image,
            "serve",
        ]);
        let port = c.host_port(8080);
        c.wait_ready(port);
        for (file, content_type, records) in samples {
            let r = post(port, content_type, "text/csv", &sample_payload(file));
            assert_eq!(r.status, 200, "{kind} {file}: {}", r.text());
            assert_eq!(r.text().lines().count(), records, "{kind} {file}");
            let r = post(
                port,
                content_type,
                "application/json",
                &sample_payload(file),
            );
            assert_eq!(r.status, 200, "{kind} {file}");
        }
        let (took, code) = c.stop();
        assert!(took < Duration::from_secs(5), "stop took {took:?}");
        assert_eq!(code, 0, "{}", c.logs());
    }
}

#[test]
fn batch_mode_and_bind_port_inside_the_container() {
    let Some(image) = image() else { return };
    let s = host_trained("fire");
    let c = Container::run(&[
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-e",
        "SAGEMAKER_BATCH=true",
        "-e",
        "SAGEMAKER_BIND_TO_PORT=9090",
        "-v",
        &model_mount(&s),
        "-p",
        "127.0.0.1::9090",
        &image,
        "serve",
    ]);
    let port = c.host_port(9090);
    c.wait_ready(port);
    let rows = 20_000;
    let mut body = Vec::new();
    datagen::write_rows(
        &datagen::fire_mix(9, rows, 0),
        Layout::CsvLabelFirst,
        &mut body,
    )
    .unwrap();
    // Drop the label column: requests carry features only.
    let body: String = text(&body)
        .lines()
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect();
    let r = post(port, "text/csv", "application/jsonlines", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().lines().count(), rows);
    let params = http_request(port, "GET", "/execution-parameters", &[], b"").unwrap();
    assert!(
        params.text().contains("\"BatchStrategy\":\"MULTI_RECORD\""),
        "{}",
        params.text()
    );
}

#[test]
fn docker_stop_during_training_and_during_load_exits_within_5_s() {
    let Some(image) = image() else { return };
    // Training: a long boosting run, stopped once its first round is logged.
    let s = writable_sandbox();
    s.config(
        "hyperparameters.json",
        r#"{"models": "gradient_boosting", "gb_num_round": "10000", "gb_max_depth": "10"}"#,
    );
    s.data_file("train", "fire.json", &fire_bytes(20_000, 5, Layout::Json));
    chmod_all(&s);
    let c = Container::run(&["-v", &mount(&s), &image, "train"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c.logs().lines().any(|l| l.starts_with("[0]")) {
        assert!(
            Instant::now() < deadline,
            "training never started: {}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (took, code) = c.stop();
    println!("docker stop during training: {took:?}, exit code {code}");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_ne!(code, 0, "a stopped job is not a success");
    assert!(
        !s.opt_ml.model_dir().join("manifest.json").exists(),
        "no model may appear from a stopped job"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.opt_ml.model_dir()).unwrap().collect();
    assert!(leftovers.is_empty(), "half-written files: {leftovers:?}");
    assert!(s.failure_reason().unwrap().contains("SIGTERM"));

    // Serving: stopped while it loads (right after start).
    let model = host_trained("fire");
    let c = Container::run(&["-v", &model_mount(&model), &image, "serve"]);
    let (took, _) = c.stop();
    println!("docker stop during load: {took:?}");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
}

/// A user-defined Docker network, removed when dropped.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.0]);
    }
}

/// `algo-1` .. `algo-N` training on one user-defined network, as SageMaker runs a multi-host
/// job: each with its own `/opt/ml` (`setup` writes its channels) and `resourceconfig.json`.
struct Cluster {
    hosts: Vec<(String, Sandbox, Container)>,
    network: Network,
}

impl Cluster {
    fn train(
        image: &str,
        n: usize,
        hyperparameters: &str,
        setup: impl Fn(usize, &Sandbox),
    ) -> Self {
        let id = format!("{}-{}", std::process::id(), unique());
        let network = Network(format!("sagemaker-test-{id}"));
        docker_ok(&["network", "create", &network.0]);
        let names: Vec<String> = (1..=n).map(|i| format!("algo-{i}")).collect();
        let hosts = names
            .iter()
            .enumerate()
            .map(|(k, host)| {
                let s = writable_sandbox();
                s.config("hyperparameters.json", hyperparameters);
                s.config(
                    "resourceconfig.json",
                    &format!(
                        r#"{{"current_host": "{host}", "hosts": {names:?}, "network_interface_name": "eth0"}}"#
                    ),
                );
                setup(k, &s);
                chmod_all(&s);
                let c = Container::run(&[
                    "--name",
                    &format!("{host}-{id}"),
                    "--hostname",
                    host,
                    "--network",
                    &network.0,
                    "--network-alias",
                    host,
                    "-v",
                    &mount(&s),
                    image,
                    "train",
                ]);
                (host.clone(), s, c)
            })
            .collect();
        Self { hosts, network }
    }

    /// Waits until every host has joined the others.
    fn wait_joined(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self
            .hosts
            .iter()
            .all(|(_, _, c)| c.logs().contains("joined the hosts"))
        {
            assert!(Instant::now() < deadline, "{}", self.hosts[0].2.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for every container; their exit codes and how long the last took from `since`.
    fn wait_all(&self, since: Instant) -> (Vec<i64>, Duration) {
        let codes = self.hosts.iter().map(|(_, _, c)| c.wait_exit()).collect();
        (codes, since.elapsed())
    }
}

/// A number not used before by this process (names of parallel tests' networks).
fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// The 251K-row fire mix (200,000 generator rows and 51,000 demo rows), 70 / 15 / 15 % by
/// position into train / validation / test, each cut into three files (CSV with the header):
/// `[channel][file]`.
fn fire_mix_files() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut all = Vec::new();
    datagen::write_rows(
        &datagen::fire_mix(7, 200_000, 51_000),
        Layout::CsvHeader,
        &mut all,
    )
    .unwrap();
    let all = text(&all);
    let mut lines = all.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let n = rows.len();
    let (train, rest) = rows.split_at(n * 70 / 100);
    let (validation, test) = rest.split_at(n * 15 / 100);
    let thirds = |part: &[&str]| -> Vec<Vec<u8>> {
        part.chunks(part.len().div_ceil(3))
            .map(|c| format!("{header}\n{}\n", c.join("\n")).into_bytes())
            .collect()
    };
    vec![
        ("train", thirds(train)),
        ("validation", thirds(validation)),
        ("test", thirds(test)),
    ]
}

/// The test AUC of the ensemble a job's first host wrote.
fn ensemble_test_auc(s: &Sandbox) -> f64 {
    let e: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.opt_ml.output_data_dir().join("evaluation.json")).unwrap(),
    )
    .unwrap();
    e["test"]["ensemble"]["auc"].as_f64().unwrap()
}

/// Three containers train together: the fire ensemble on the 251K-row mix with each host's own
/// files (ShardedByS3Key), as good as one container on the same rows (test AUC within 0.002);
/// then tabular XGBoost on California housing with every host holding the whole file
/// (FullyReplicated: each takes every third row). Every host trains and exits 0; only algo-1
/// writes, counting every host's rows.
#[test]
fn three_hosts_on_a_user_network_train_together_and_the_first_writes() {
    let Some(image) = image() else { return };
    let hp = r#"{"nthread": "1", "rf_num_trees": "100", "gb_num_round": "100"}"#;
    let files = fire_mix_files();
    let sharded = r#"{"train": {"S3DistributionType": "ShardedByS3Key"},
        "validation": {"S3DistributionType": "ShardedByS3Key"},
        "test": {"S3DistributionType": "ShardedByS3Key"}}"#;
    let one = Cluster::train(&image, 1, hp, |_, s| {
        for (channel, parts) in &files {
            for (k, bytes) in parts.iter().enumerate() {
                s.data_file(channel, &format!("part{k}.csv"), bytes);
            }
        }
    });
    let (codes, _) = one.wait_all(Instant::now());
    assert_eq!(codes, [0], "{}", one.hosts[0].2.logs());
    let fire = Cluster::train(&image, 3, hp, |k, s| {
        s.config("inputdataconfig.json", sharded);
        for (channel, parts) in &files {
            s.data_file(channel, &format!("part{k}.csv"), &parts[k]);
        }
    });
    let (codes, _) = fire.wait_all(Instant::now());
    for ((host, s, c), code) in fire.hosts.iter().zip(codes) {
        let log = c.logs();
        assert_eq!(code, 0, "{host}: {log}");
        assert!(
            log.contains("joined the hosts") && log.contains("every host finished"),
            "{host}: {log}"
        );
        assert!(
            log.contains(r#"this host's rows channel="train" rows=5856"#),
            "{host}: {log}"
        );
        let has_model = s.opt_ml.model_dir().join("manifest.json").exists();
        assert_eq!(has_model, host == "algo-1", "{host}");
    }
    let manifest = Manifest::load(&fire.hosts[0].1.opt_ml.model_dir()).unwrap();
    assert_eq!(
        manifest.rows.values().sum::<usize>(),
        251_000,
        "{:?}",
        manifest.rows
    );
    let (single, three) = (
        ensemble_test_auc(&one.hosts[0].1),
        ensemble_test_auc(&fire.hosts[0].1),
    );
    eprintln!("251K fire mix in containers, test AUC: one host {single}, three hosts {three}");
    assert!(
        (single - three).abs() < 0.002,
        "test AUC: one host {single}, three hosts {three}"
    );

    let housing = Cluster::train(
        &image,
        3,
        r#"{"model_kind": "tabular", "candidates": "xgboost", "nthread": "1"}"#,
        |_, s| {
            s.data_file("train", "housing.csv.gz", &housing_csv());
        },
    );
    let (codes, _) = housing.wait_all(Instant::now());
    for ((host, _, c), code) in housing.hosts.iter().zip(codes) {
        assert_eq!(code, 0, "{host}: {}", c.logs());
    }
    let first = &housing.hosts[0].1;
    let manifest = Manifest::load(&first.opt_ml.model_dir()).unwrap();
    assert_eq!(
        manifest.rows.values().sum::<usize>(),
        20_640,
        "{:?}",
        manifest.rows
    );
    let comparison: serde_json::Value = serde_json::from_slice(
        &std::fs::read(first.opt_ml.output_data_dir().join("evaluation.json")).unwrap(),
    )
    .unwrap();
    let rmse = comparison["candidates"]["xgboost"]["validation"]["rmse"]
        .as_f64()
        .unwrap();
    assert!(rmse < 0.55, "validation RMSE {rmse} over all hosts' rows");
}

/// A host killed (`docker kill`) or cut off from the network (`docker network disconnect`)
/// while training: every host exits non-zero in well under a minute, each failure file naming
/// the lost host (the cut-off host names the others).
#[test]
fn a_host_killed_or_cut_off_fails_every_host_in_time_naming_it() {
    let Some(image) = image() else { return };
    let hp = r#"{"nthread": "1", "rf_num_trees": "3000", "gb_num_round": "20"}"#;
    for cut_off in [false, true] {
        let cluster = Cluster::train(&image, 3, hp, |_, s| {
            s.data_file("train", "fire.json", &fire_bytes(20_000, 3, Layout::Json));
        });
        cluster.wait_joined();
        std::thread::sleep(Duration::from_secs(2));
        let (lost, _, victim) = &cluster.hosts[if cut_off { 1 } else { 2 }];
        if cut_off {
            docker_ok(&["network", "disconnect", &cluster.network.0, &victim.0]);
        } else {
            docker_ok(&["kill", &victim.0]);
        }
        let (codes, took) = cluster.wait_all(Instant::now());
        let what = if cut_off { "cut off" } else { "killed" };
        assert!(
            took < Duration::from_secs(60),
            "{what} {lost}: the others took {took:?}"
        );
        for ((host, s, c), code) in cluster.hosts.iter().zip(codes) {
            assert_ne!(code, 0, "{what} {lost}: {host} exited 0: {}", c.logs());
            if host == lost && !cut_off {
                continue;
            }
            let reason = s
                .failure_reason()
                .unwrap_or_else(|| panic!("{host}: no failure file: {}", c.logs()));
            assert!(
                reason.starts_with("Distributed training error"),
                "{host}: {reason}"
            );
            if host != lost {
                assert!(
                    reason.contains(lost.as_str()),
                    "{what} {lost}: {host}: {reason}"
                );
            }
        }
        let first = &cluster.hosts[0].1;
        assert!(!first.opt_ml.model_dir().join("manifest.json").exists());
        let reasons: Vec<String> = cluster
            .hosts
            .iter()
            .filter_map(|(_, s, _)| s.failure_reason())
            .collect();
        println!("{what} {lost}: every host stopped within {took:.1?}: {reasons:?}");
    }
}

/// The SageMaker Python SDK's local-mode mounts (measured with SDK 2.257.7): `input/` (config
/// and channels) and each channel from their own mode-0700 directories, `output/` and
/// `output/data` from 0755 ones, and `model/` from a path that does not exist on the host, so the
/// Docker daemon creates it as root. All owned by `owner` (root when `None`). No `--user`.
struct SdkLayout {
    sandbox: Sandbox,
    channel: tempfile::TempDir,
    model: std::path::PathBuf,
}

impl SdkLayout {
    fn new(owner: Option<u32>) -> Self {
        let sandbox = Sandbox::new();
        let channel = tempfile::tempdir().unwrap();
        let model = sandbox.opt_ml.root().join("model-by-docker");
        let root = sandbox.opt_ml.root();
        for (dir, mode) in [
            (root.join("input"), "0700"),
            (channel.path().to_path_buf(), "0700"),
            (root.join("output"), "0755"),
            (root.join("output/data"), "0755"),
        ] {
            if let Some(uid) = owner {
                let who = format!("{uid}:{uid}");
                assert!(Command::new("chown")
                    .args(["-R", &who])
                    .arg(&dir)
                    .status()
                    .unwrap()
                    .success());
            }
            assert!(Command::new("chmod")
                .arg(mode)
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        if let Some(uid) = owner {
            // The daemon creates a missing mount source as root; a foreign owner made it itself.
            std::fs::create_dir(&model).unwrap();
            let who = format!("{uid}:{uid}");
            assert!(Command::new("chown")
                .arg(&who)
                .arg(&model)
                .status()
                .unwrap()
                .success());
            assert!(Command::new("chmod")
                .arg("0700")
                .arg(&model)
                .status()
                .unwrap()
                .success());
        }
        Self {
            sandbox,
            channel,
            model,
        }
    }

    fn data_file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.channel.path().join(name), bytes).unwrap();
    }

    /// `docker run` arguments for these mounts.
    fn mounts(&self) -> Vec<String> {
        let root = self.sandbox.opt_ml.root().display().to_string();
        [
            format!("{root}/input:/opt/ml/input"),
            format!("{root}/output:/opt/ml/output"),
            format!("{root}/output/data:/opt/ml/output/data"),
            format!("{}:/opt/ml/model", self.model.display()),
            format!("{}:/opt/ml/input/data/train", self.channel.path().display()),
        ]
        .into_iter()
        .flat_map(|m| ["-v".to_owned(), m])
        .collect()
    }

    fn run(&self, image: &str, pre: &[&str], command: &[&str]) -> Output {
        let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
        args.extend(pre.iter().map(|s| s.to_string()));
        args.extend(self.mounts());
        args.push(image.into());
        args.extend(command.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args)
    }
}

/// The image and a fire training job in the SDK's layout (`rows` generated rows, seeded), or
/// `None` (skip) when Docker tests are off or this process is not root (only root can make
/// root-owned mounts; CI runs as root).
fn sdk_fire_job(owner: Option<u32>, rows: usize, seed: u64) -> Option<(String, SdkLayout)> {
    let image = image()?;
    if !common::access::is_root() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but not root: the SDK-layout tests need root to make root-owned mounts"
        );
        eprintln!("skipping: root-owned mounts can only be made by root (CI runs as root)");
        return None;
    }
    let sdk = SdkLayout::new(owner);
    sdk.sandbox
        .config("hyperparameters.json", &format!("{{{SMALL_MODELS}}}"));
    sdk.data_file("fire.json", &fire_bytes(rows, seed, Layout::Json));
    Some((image, sdk))
}

fn owner_of(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid())
}

/// Serves `model_dir` as the SDK's deploy does (a root-owned 0700 directory, no `--user`), checks
/// a prediction and that the serving process gave up root.
fn serve_like_the_sdk(image: &str, model_dir: &std::path::Path, command: &[&str]) {
    assert!(Command::new("chmod")
        .arg("0700")
        .arg(model_dir)
        .status()
        .unwrap()
        .success());
    let mount = format!("{}:/opt/ml/model", model_dir.display());
    let mut args = vec!["-v", &mount, "-p", "127.0.0.1::8080", image];
    args.extend_from_slice(command);
    let c = Container::run(&args);
    let port = c.host_port(8080);
    c.wait_ready(port);
    let r = post(
        port,
        "text/csv",
        "application/json",
        &sample_payload("fire-single.csv"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("ensemble_probability"), "{}", r.text());
    let top = docker_ok(&["top", &c.0, "-o", "pid,uid,comm"]);
    let serve_uid = top
        .lines()
        .find(|l| l.ends_with("serve"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    assert_eq!(serve_uid.as_deref(), Some("10001"), "{top}\n{}", c.logs());
    assert!(c.logs().contains("running unprivileged"), "{}", c.logs());
}

#[test]
fn trains_and_serves_with_the_sdk_local_mode_mounts() {
    for owner in [None, Some(4242)] {
        let Some((image, sdk)) = sdk_fire_job(owner, 3000, 11) else {
            return;
        };
        sdk.sandbox.config(
            "inputdataconfig.json",
            r#"{"train": {"TrainingInputMode": "File"}}"#,
        );
        let out = sdk.run(&image, &[], &["train"]);
        assert!(
            out.status.success(),
            "owner {owner:?}: {}",
            text(&out.stderr)
        );
        let m = Manifest::load(&sdk.model).unwrap();
        assert_eq!(m.model_kind, "fire_ensemble");
        let evaluation = sdk.sandbox.opt_ml.output_data_dir().join("evaluation.json");
        assert!(evaluation.is_file());
        assert!(sdk.sandbox.opt_ml.success_file().is_file());
        // What train wrote belongs to whoever owns the directory it went into.
        let expected = owner.map_or((0, 0), |u| (u, u));
        assert_eq!(owner_of(&sdk.model.join("manifest.json")), expected);
        assert_eq!(owner_of(&sdk.model.join(&m.payloads[0].file)), expected);
        assert_eq!(owner_of(&evaluation), expected);
        serve_like_the_sdk(&image, &sdk.model, &["serve"]);
    }
}

#[test]
fn with_no_command_a_training_layout_trains_and_a_model_alone_is_served() {
    let Some((image, sdk)) = sdk_fire_job(None, 3000, 12) else {
        return;
    };
    let out = sdk.run(&image, &[], &[]);
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("started with no command") && log.contains("running train"),
        "{log}"
    );
    assert!(text(&out.stdout).contains("metric: test:auc="));
    assert_eq!(
        Manifest::load(&sdk.model).unwrap().model_kind,
        "fire_ensemble"
    );
    serve_like_the_sdk(&image, &sdk.model, &[]);
}

#[test]
fn a_user_who_cannot_read_the_mounts_is_told_so_with_path_owner_and_mode() {
    let Some((image, sdk)) = sdk_fire_job(None, 1000, 13) else {
        return;
    };
    // output/ is 0755 root: not even the failure file can be written, and the log says why.
    let out = sdk.run(&image, &["--user", "10001:10001"], &["train"]);
    let log = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!log.contains("Missing required channel"), "{log}");
    for part in [
        "Permission error: permission denied on /opt/ml/input/config/hyperparameters.json",
        "directory /opt/ml/input is owned by uid 0 gid 0 with mode 0700",
        "this process runs as uid 10001 gid 10001",
        "cannot write the failure file: Permission error: permission denied on /opt/ml/output/failure",
    ] {
        assert!(log.contains(part), "missing '{part}' in:\n{log}");
    }
    // With a writable output/, the reason reaches the failure file.
    let output = sdk.sandbox.opt_ml.output_dir();
    assert!(Command::new("chmod")
        .arg("0777")
        .arg(&output)
        .status()
        .unwrap()
        .success());
    let out = sdk.run(&image, &["--user", "10001:10001"], &["train"]);
    assert!(!out.status.success());
    let reason = sdk.sandbox.failure_reason().expect("failure file");
    assert!(
        reason.starts_with("Permission error: permission denied on /opt/ml/input/"),
        "{reason}"
    );
    assert!(reason.contains("mode 0700"), "{reason}");
}

/// The real SageMaker Python SDK v2 (2.257.7) in local mode, offline, driving the image:
/// `Estimator.fit`, `deploy` and predictions with its CSV and JSON serializers, a `Transformer`
/// batch transform (MultiRecord, Line), a built-in XGBoost job moved here by its image URI, and
/// a failing job whose reason the SDK's output shows (`tests/sdk/local_mode_v2.py`). `SDK_PYTHON` is the interpreter `scripts/sdk-venv.sh`
/// provisions; scripts/test.sh sets it.
#[test]
fn sagemaker_sdk_v2_local_mode_fits_deploys_predicts_and_transforms() {
    let Some(image) = image() else { return };
    let Some(python) = e2e::sdk_python() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/local_mode_v2.py");
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(python)
        .arg(script)
        .arg(&image)
        .arg(work.path())
        .output()
        .expect("run the SDK test");
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{log}");
    for step in [
        "fit",
        "deploy",
        "transform",
        "builtin-xgboost",
        "fit-two-hosts",
        "failing-fit",
        "offline",
        "cleanup",
    ] {
        assert!(log.contains(&format!("sdk: {step} ok")), "{step}:\n{log}");
    }
    println!(
        "{}",
        log.lines()
            .filter(|l| l.starts_with("sdk: ") && l.contains(" ok "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `/opt/ml/models` as SageMaker lays it out for a multi-model endpoint: `<name>/model/` per
/// model, here one of each kind (the tabular one as `model.tar.gz`), readable by anyone.
fn models_root() -> (tempfile::TempDir, Vec<(&'static str, &'static str)>) {
    let root = tempfile::tempdir().unwrap();
    let mut kinds = Vec::new();
    for (kind, name) in [
        ("fire", "fire-a1"),
        ("iops", "iops-b2"),
        ("tabular", "tabular-c3"),
    ] {
        let trained = host_trained(kind);
        let dest = root.path().join(name).join("model");
        std::fs::create_dir_all(&dest).unwrap();
        let src = trained.opt_ml.model_dir();
        let copy = if kind == "tabular" {
            Command::new("tar")
                .arg("-czf")
                .arg(dest.join("model.tar.gz"))
                .arg("-C")
                .arg(&src)
                .arg(".")
                .status()
        } else {
            Command::new("cp")
                .arg("-R")
                .arg(format!("{}/.", src.display()))
                .arg(&dest)
                .status()
        };
        assert!(copy.unwrap().success());
        kinds.push((kind, name));
    }
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(root.path())
        .status()
        .unwrap();
    (root, kinds)
}

/// The image as a multi-model endpoint with `models` mounted read-only at `/opt/ml/models`,
/// ready; `extra` are more `docker run` options.
fn mme_container(image: &str, models: &std::path::Path, extra: &[&str]) -> (Container, u16) {
    let mount = format!("{}:/opt/ml/models:ro", models.display());
    let mut args = extra.to_vec();
    args.extend([
        "-e",
        "SAGEMAKER_MULTI_MODEL=true",
        "-v",
        &mount,
        "-p",
        "127.0.0.1::8080",
        image,
        "serve",
    ]);
    let c = Container::run(&args);
    let port = c.host_port(8080);
    c.wait_ready(port);
    (c, port)
}

fn mme_request(port: u16, method: &str, path: &str, body: &str) -> Reply {
    http_request(port, method, path, &[], body.as_bytes()).unwrap()
}

fn load_request(name: &str) -> String {
    format!(r#"{{"model_name": "{name}", "url": "/opt/ml/models/{name}/model"}}"#)
}

#[test]
fn multi_model_endpoint_sequence_with_every_kind_on_a_read_only_mount() {
    let Some(image) = image() else { return };
    let (root, kinds) = models_root();
    let (c, port) = mme_container(&image, root.path(), &[]);
    let r = mme_request(port, "GET", "/models", "");
    assert_eq!(r.text(), r#"{"models":[]}"#);
    let samples = [
        ("fire", "fire-batch.csv", 5),
        ("iops", "iops-batch.csv", 8),
        ("tabular", "housing-batch.csv", 5),
    ];
    for (kind, name) in &kinds {
        let r = mme_request(port, "POST", "/models", &load_request(name));
        assert_eq!(r.status, 200, "{kind}: {} {}", r.text(), c.logs());
        let r = mme_request(port, "POST", "/models", &load_request(name));
        assert_eq!(r.status, 409, "{kind}: {}", r.text());
        let (_, file, records) = samples.iter().find(|(k, _, _)| k == kind).unwrap();
        let r = http_request(
            port,
            "POST",
            &format!("/models/{name}/invoke"),
            &[
                ("Content-Type", "text/csv"),
                ("Accept", "text/csv"),
                ("X-Amzn-SageMaker-Target-Model", &format!("{name}.tar.gz")),
            ],
            &sample_payload(file),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        assert_eq!(r.text().lines().count(), *records, "{kind}");
    }
    let (_, fire) = kinds[0];
    assert_eq!(
        mme_request(port, "DELETE", &format!("/models/{fire}"), "").status,
        200
    );
    let r = http_request(
        port,
        "POST",
        &format!("/models/{fire}/invoke"),
        &[("Content-Type", "text/csv")],
        &sample_payload("fire-single.csv"),
    )
    .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let listed: serde_json::Value =
        serde_json::from_slice(&mme_request(port, "GET", "/models", "").body).unwrap();
    let names: Vec<_> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelName"].as_str().unwrap())
        .collect();
    assert_eq!(names, [kinds[1].1, kinds[2].1]);
    let (took, code) = c.stop();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(code, 0, "{}", c.logs());
}

#[test]
fn multi_model_endpoint_in_256_mib_answers_507_before_the_kernel_kills_it() {
    let Some(image) = image() else { return };
    let (root, kinds) = models_root();
    let (c, port) = mme_container(
        &image,
        root.path(),
        &["--memory", "256m", "--memory-swap", "256m"],
    );
    // The same fire model under ever new names, as SageMaker would load distinct models.
    let (_, fire) = kinds[0];
    let url = format!("/opt/ml/models/{fire}/model");
    let mut loaded = 0;
    let full = loop {
        let body = format!(r#"{{"model_name": "copy-{loaded}", "url": "{url}"}}"#);
        let r = mme_request(port, "POST", "/models", &body);
        if r.status != 200 {
            break r;
        }
        loaded += 1;
        assert!(loaded < 20_000, "never ran out of memory");
    };
    assert_eq!(full.status, 507, "{} {}", full.text(), c.logs());
    eprintln!("256 MiB container: {loaded} small fire models loaded before 507");
    let r = http_request(
        port,
        "POST",
        "/models/copy-0/invoke",
        &[("Content-Type", "text/csv")],
        &sample_payload("fire-batch.csv"),
    )
    .unwrap();
    assert_eq!(
        r.status,
        200,
        "a full container still answers: {}",
        r.text()
    );
    assert_eq!(
        mme_request(port, "DELETE", "/models/copy-1", "").status,
        200
    );
    let r = mme_request(
        port,
        "POST",
        "/models",
        &format!(r#"{{"model_name": "after", "url": "{url}"}}"#),
    );
    assert_eq!(r.status, 200, "after an unload: {}", r.text());
    let oom = docker_ok(&[
        "inspect",
        "-f",
        "{{.State.OOMKilled}} {{.State.Running}}",
        &c.0,
    ]);
    assert_eq!(oom, "false true", "{}", c.logs());
}
