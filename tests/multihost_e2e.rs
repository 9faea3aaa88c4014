//! Several hosts on loopback: real `train` processes, XGBoost's real tracker and communicator.
//! Hosts are named by loopback addresses (127.0.0.1, 127.0.0.2, ...), so every name resolves
//! and each host has its own address, as on a SageMaker cluster.

use common::datagen::Layout;
use e2e::{fire_bytes, free_port, text, Sandbox, SMALL_MODELS};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One `/opt/ml` tree per host, each with its `resourceconfig.json`.
fn hosts(n: usize) -> Vec<Sandbox> {
    let names: Vec<String> = (1..=n).map(|i| format!("\"127.0.0.{i}\"")).collect();
    (1..=n)
        .map(|i| {
            let s = Sandbox::new();
            s.config(
                "resourceconfig.json",
                &format!(
                    r#"{{"current_host": "127.0.0.{i}", "hosts": [{}]}}"#,
                    names.join(", ")
                ),
            );
            s
        })
        .collect()
}

/// Starts `train` on every host, with the tracker on `port` (its liveness port is the next);
/// each host's log goes to [`log`].
fn start(hosts: &[Sandbox], port: u16) -> Vec<Child> {
    hosts
        .iter()
        .map(|s| {
            let log = std::fs::File::create(log_path(s)).unwrap();
            let mut c: Command = s.train_command();
            c.env("SAGEMAKER_TABULAR_TRACKER_PORT", port.to_string())
                .env("SAGEMAKER_TABULAR_HOST_WAIT_SECONDS", "60")
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect("spawn train")
        })
        .collect()
}

fn log_path(s: &Sandbox) -> std::path::PathBuf {
    s.opt_ml.root().join("train.log")
}

/// A host's log so far.
fn log(s: &Sandbox) -> String {
    std::fs::read_to_string(log_path(s)).unwrap_or_default()
}

/// Waits for every host (reading their output in parallel, so no pipe fills).
fn finish(children: Vec<Child>) -> Vec<Output> {
    let waits: Vec<_> = children
        .into_iter()
        .map(|c| std::thread::spawn(move || c.wait_with_output().expect("wait for train")))
        .collect();
    waits.into_iter().map(|w| w.join().unwrap()).collect()
}

/// A tracker port whose next port (liveness) is free too.
fn two_free_ports() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok() {
            return p;
        }
    }
}

/// CSV lines (header first) of generated fire rows.
fn fire_csv(rows: usize, seed: u64) -> (String, Vec<String>) {
    let all = text(&fire_bytes(rows, seed, Layout::CsvHeader));
    let mut lines = all.lines().map(str::to_owned);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

/// Rows `k, k + n, k + 2n, ...` as a CSV file with the header.
fn every_nth(header: &str, rows: &[String], k: usize, n: usize) -> Vec<u8> {
    let mut out = format!("{header}\n");
    for r in rows.iter().skip(k).step_by(n) {
        out.push_str(r);
        out.push('\n');
    }
    out.into_bytes()
}

fn evaluation(s: &Sandbox) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(s.opt_ml.output_data_dir().join("evaluation.json")).unwrap(),
    )
    .unwrap()
}

fn auc(e: &serde_json::Value, member: &str) -> f64 {
    let m = &e["test"];
    let of = if member == "ensemble" {
        &m["ensemble"]
    } else {
        &m["members"][member]
    };
    of["auc"]
        .as_f64()
        .unwrap_or_else(|| panic!("no test AUC of {member}: {e}"))
}

/// Three hosts, each with a third of every channel's files (ShardedByS3Key), train the same
/// ensemble as one host holding all the rows: the logistic regression is the same model (its
/// loss summed over the hosts), the tree members differ only where XGBoost's distributed
/// sketch and sampling do; the metrics are over all hosts' rows; only the first host writes.
#[test]
fn three_hosts_sharded_train_the_fire_ensemble_of_one_host() {
    let (header, rows) = fire_csv(24_000, 11);
    let (train, rest) = rows.split_at(16_000);
    let (validation, test) = rest.split_at(4_000);
    let hp = format!(r#"{{"model_kind": "fire_ensemble", "nthread": "1", {SMALL_MODELS}}}"#);
    let sharded = r#"{"train": {"S3DistributionType": "ShardedByS3Key"},
        "validation": {"S3DistributionType": "ShardedByS3Key"},
        "test": {"S3DistributionType": "ShardedByS3Key"}}"#;

    let one = Sandbox::new();
    one.config("hyperparameters.json", &hp);
    for (channel, part) in [("train", train), ("validation", validation), ("test", test)] {
        one.data_file(channel, "rows.csv", &every_nth(&header, part, 0, 1));
    }
    let single = one.run_train();
    assert!(single.status.success(), "{}", text(&single.stderr));

    let three = hosts(3);
    for (k, s) in three.iter().enumerate() {
        s.config("hyperparameters.json", &hp)
            .config("inputdataconfig.json", sharded);
        for (channel, part) in [("train", train), ("validation", validation), ("test", test)] {
            s.data_file(channel, "rows.csv", &every_nth(&header, part, k, 3));
        }
    }
    let outputs = finish(start(&three, two_free_ports()));
    for (k, o) in outputs.iter().enumerate() {
        let log = log(&three[k]);
        assert!(o.status.success(), "host {}: {log}", k + 1);
        assert!(log.contains("joined the hosts"), "{log}");
        assert!(log.contains("every host finished"), "{log}");
        assert!(
            log.contains(r#"this host's rows channel="train" rows=5333"#)
                || log.contains(r#"this host's rows channel="train" rows=5334"#),
            "{log}"
        );
    }
    // Only the first host writes the model and prints the metrics tuning reads.
    assert!(three[0].opt_ml.model_dir().join("manifest.json").is_file());
    for s in &three[1..] {
        assert_eq!(std::fs::read_dir(s.opt_ml.model_dir()).unwrap().count(), 0);
        assert!(!s.opt_ml.output_data_dir().join("evaluation.json").exists());
    }
    assert!(text(&outputs[0].stdout).contains("metric: test:auc="));
    assert!(!text(&outputs[1].stdout).contains("metric:"));

    let (a, b) = (evaluation(&one), evaluation(&three[0]));
    assert_eq!(a["rows"], b["rows"], "rows over every host");
    assert_eq!(b["rows"]["test"], 4_000);
    let lr = (auc(&a, "logistic_regression") - auc(&b, "logistic_regression")).abs();
    assert!(
        lr < 1e-4,
        "logistic regression AUC differs by {lr}: {a} / {b}"
    );
    let ensemble = (auc(&a, "ensemble") - auc(&b, "ensemble")).abs();
    assert!(
        ensemble < 0.002,
        "ensemble AUC differs by {ensemble}: {a} / {b}"
    );
}

/// A host killed mid-training makes every other host fail within seconds, with a failure
/// file naming the lost host, rather than wait out XGBoost's collective timeout.
#[test]
fn a_killed_host_fails_every_host_naming_it() {
    let (header, rows) = fire_csv(20_000, 5);
    let three = hosts(3);
    for s in &three {
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "fire_ensemble", "nthread": "1", "rf_num_trees": "2000", "gb_num_round": "20"}"#,
        );
        s.data_file("train", "rows.csv", &every_nth(&header, &rows, 0, 1));
    }
    let mut children = start(&three, two_free_ports());
    // Kill the third host once all have joined and train (the 2,000-tree forest takes minutes).
    let started = Instant::now();
    while !three.iter().all(|s| log(s).contains("joined the hosts")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            log(&three[0])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    children[2].kill().unwrap();
    let killed = Instant::now();
    let outputs = finish(children);
    let took = killed.elapsed();
    let reasons: Vec<Option<String>> = three.iter().map(Sandbox::failure_reason).collect();
    assert!(
        took < Duration::from_secs(40),
        "the others took {took:?} to stop: {reasons:?} {}",
        log(&three[0])
    );
    for (k, o) in outputs.iter().take(2).enumerate() {
        assert!(
            !o.status.success(),
            "host {} exited 0: {}",
            k + 1,
            log(&three[k])
        );
        let reason = three[k].failure_reason().expect("a failure file");
        assert!(reason.contains("127.0.0.3"), "host {}: {reason}", k + 1);
        assert!(reason.starts_with("Distributed training error"), "{reason}");
    }
    assert!(!three[0].opt_ml.model_dir().join("manifest.json").exists());
}

/// Libsvm rows of `n` features where feature `k` is `(row * 7 + k * 3) % 10`, label their sum
/// over the first three; the last feature index present is `n - 1`.
fn libsvm(rows: std::ops::Range<usize>, n: usize) -> String {
    rows.map(|r| {
        let v: Vec<usize> = (0..n).map(|k| (r * 7 + k * 3) % 10).collect();
        let label: usize = v.iter().take(3).sum();
        let entries: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(k, x)| format!("{k}:{x}"))
            .collect();
        format!("{label} {}\n", entries.join(" "))
    })
    .collect()
}

/// The built-in algorithm on two hosts whose sharded libsvm files reach different feature
/// indexes: the hosts agree on the wider width first (else their collectives would differ in
/// length), XGBoost's metrics and ours (`mse`, computed from gathered predictions) are over both
/// hosts' rows, early stopping stops both after the same round, and the result is the
/// single host's on the same rows.
#[test]
fn two_hosts_train_the_builtin_algorithm_on_libsvm_files_of_different_widths() {
    let hp = r#"{"model_kind": "xgboost", "num_round": "30", "max_depth": "4", "eval_metric": "rmse,mse", "early_stopping_rounds": "5", "nthread": "1"}"#;
    let sharded = r#"{"train": {"S3DistributionType": "ShardedByS3Key"}, "validation": {"S3DistributionType": "ShardedByS3Key"}}"#;
    let parts = [
        (libsvm(0..3000, 6), libsvm(3000..3600, 6)),
        (libsvm(4000..7000, 8), libsvm(7000..7600, 8)),
    ];

    let one = Sandbox::new();
    one.config("hyperparameters.json", hp);
    for (k, (train, validation)) in parts.iter().enumerate() {
        one.data_file("train", &format!("part-{k}"), train.as_bytes());
        one.data_file("validation", &format!("part-{k}"), validation.as_bytes());
    }
    let single = one.run_train();
    assert!(single.status.success(), "{}", text(&single.stderr));

    let two = hosts(2);
    for (s, (train, validation)) in two.iter().zip(&parts) {
        s.config("hyperparameters.json", hp)
            .config("inputdataconfig.json", sharded);
        s.data_file("train", "part", train.as_bytes());
        s.data_file("validation", "part", validation.as_bytes());
    }
    let outputs = finish(start(&two, two_free_ports()));
    for (k, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "host {}: {}", k + 1, log(&two[k]));
    }
    let (a, b) = (evaluation(&one), evaluation(&two[0]));
    assert_eq!(a["rows"], b["rows"]);
    let score = |e: &serde_json::Value, m: &str| e["scores"]["validation"][m].as_f64().unwrap();
    for m in ["rmse", "mse"] {
        let (x, y) = (score(&a, m), score(&b, m));
        assert!(
            (x - y).abs() <= 0.02 * x.abs().max(1e-3),
            "{m}: one host {x}, two hosts {y}"
        );
    }
    // Both hosts logged the same number of rounds' worth of training (the leader prints them).
    let rounds = text(&outputs[0].stdout)
        .lines()
        .filter(|l| l.starts_with('['))
        .count();
    assert_eq!(rounds as u64, b["rounds_run"].as_u64().unwrap());
}

/// The IOPS pair on three hosts, each with every row (FullyReplicated: each keeps a third):
/// both models train across the hosts, the metrics count every host's rows, and the quality is
/// one host's.
#[test]
fn three_hosts_train_the_iops_pair_from_replicated_files() {
    use common::datagen::{self, iops as gen};
    let all = gen::insights(&mut datagen::rng(4), 9_000);
    let mut bytes = Vec::new();
    gen::write(&all, gen::IopsLayout::JsonLines, &mut bytes).unwrap();
    let hp = r#"{"model_kind": "iops", "nthread": "1"}"#;
    let one = Sandbox::new();
    one.config("hyperparameters.json", hp);
    one.data_file("train", "insights.jsonl", &bytes);
    let single = one.run_train();
    assert!(single.status.success(), "{}", text(&single.stderr));

    let three = hosts(3);
    for s in &three {
        s.config("hyperparameters.json", hp);
        s.data_file("train", "insights.jsonl", &bytes);
    }
    let outputs = finish(start(&three, two_free_ports()));
    for (k, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "host {}: {}", k + 1, log(&three[k]));
        assert!(log(&three[k]).contains(r#"this host's rows channel="train" rows=3000"#));
    }
    let (a, b) = (evaluation(&one), evaluation(&three[0]));
    let total = |e: &serde_json::Value| {
        e["rows"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total(&b), 9_000);
    let accuracy = |e: &serde_json::Value| e["classifier"]["test"]["accuracy"].as_f64().unwrap();
    let rmse = |e: &serde_json::Value| e["regressor"]["test"]["rmse"].as_f64().unwrap();
    assert!(accuracy(&b) >= accuracy(&a) - 0.01, "{a} / {b}");
    assert!(rmse(&b) <= rmse(&a) * 1.05, "{a} / {b}");
}

/// A host whose shard of the train channel is empty (fewer files than hosts) fails every host
/// alike, naming it and the fix, rather than leaving the others to lose it.
#[test]
fn a_host_without_rows_fails_every_host_naming_it() {
    let (header, rows) = fire_csv(3_000, 12);
    let hp = format!(r#"{{"model_kind": "fire_ensemble", "nthread": "1", {SMALL_MODELS}}}"#);
    let three = hosts(3);
    for (k, s) in three.iter().enumerate() {
        s.config("hyperparameters.json", &hp).config(
            "inputdataconfig.json",
            r#"{"train": {"S3DistributionType": "ShardedByS3Key"}}"#,
        );
        if k < 2 {
            s.data_file("train", "rows.csv", &every_nth(&header, &rows, k, 2));
        } else {
            std::fs::create_dir_all(s.opt_ml.channel_dir("train")).unwrap();
        }
    }
    let started = Instant::now();
    let outputs = finish(start(&three, two_free_ports()));
    assert!(started.elapsed() < Duration::from_secs(60));
    for (k, o) in outputs.iter().enumerate() {
        assert!(!o.status.success(), "host {}: {}", k + 1, log(&three[k]));
        let reason = three[k].failure_reason().unwrap_or_default();
        assert!(
            reason.contains("host(s) 127.0.0.3 hold no rows of channel 'train'")
                && reason.contains("at least as many files as hosts (3)"),
            "host {}: {reason}",
            k + 1
        );
    }
}

/// A host that dies after reaching the tracker but before every host has joined: XGBoost's
/// tracker then throws in a thread of its own and aborts the first host. Every host still
/// ends with exit 1 and a failure file (the abort is turned into one), not a bare abort.
#[test]
fn a_host_dying_while_the_hosts_join_leaves_every_host_a_failure_file() {
    let (header, rows) = fire_csv(2_000, 13);
    let hp = format!(r#"{{"model_kind": "fire_ensemble", "nthread": "1", {SMALL_MODELS}}}"#);
    let three = hosts(3);
    for s in &three {
        s.config("hyperparameters.json", &hp);
        s.data_file("train", "rows.csv", &every_nth(&header, &rows, 0, 1));
    }
    let port = two_free_ports();
    let spawn = |s: &Sandbox| {
        s.train_command()
            .env("SAGEMAKER_TABULAR_TRACKER_PORT", port.to_string())
            .env("SAGEMAKER_TABULAR_HOST_WAIT_SECONDS", "10")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log_path(s)).unwrap())
            .spawn()
            .expect("spawn train")
    };
    let mut first = spawn(&three[0]);
    std::thread::sleep(Duration::from_secs(1));
    let mut third = spawn(&three[2]);
    // Time to reach the tracker and wait there for the second host.
    std::thread::sleep(Duration::from_secs(2));
    third.kill().unwrap();
    third.wait().unwrap();
    let mut second = spawn(&three[1]);
    for (k, child) in [(0, &mut first), (1, &mut second)] {
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "host {}: {}", k + 1, log(&three[k]));
        let reason = three[k].failure_reason().unwrap_or_default();
        assert!(
            reason.contains("Distributed training error"),
            "host {}: {reason}",
            k + 1
        );
    }
}

/// SIGTERM reaching one host of two during boosting, with `save_model_on_termination`: the
/// hosts agree at the next round, both stop there and exit 0, and the first writes the ensemble
/// as it stands, marked partial (no host is left waiting in a collective step).
#[test]
fn sigterm_on_one_host_stops_both_at_the_same_round_and_the_first_saves() {
    let (header, rows) = fire_csv(6_000, 14);
    let two = hosts(2);
    for (k, s) in two.iter().enumerate() {
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "fire_ensemble", "nthread": "1", "rf_num_trees": "25",
                "rf_max_depth": "6", "gb_num_round": "10000", "save_model_on_termination": "true"}"#,
        )
        .config(
            "inputdataconfig.json",
            r#"{"train": {"S3DistributionType": "ShardedByS3Key"}}"#,
        );
        s.data_file("train", "rows.csv", &every_nth(&header, &rows, k, 2));
    }
    let mut children = start(&two, two_free_ports());
    // The first host prints the rounds; the signal goes to the second.
    let stdout = children[0].stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.starts_with("[20]"))),
        "no round 20: {}",
        log(&two[0])
    );
    Command::new("kill")
        .args(["-TERM", &children[1].id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let outputs = finish(children);
    for (k, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "host {}: {}", k + 1, log(&two[k]));
    }
    let manifest = common::artifact::Manifest::load(&two[0].opt_ml.model_dir()).unwrap();
    let kept = manifest.partial.expect("marked partial");
    assert!(kept.starts_with("gradient_boosting "), "{kept}");
    assert!(
        rest.iter().any(|l| l.starts_with("metric: test:auc=")),
        "{rest:?}"
    );
    assert!(evaluation(&two[0])["partial"] == true);
    assert!(!two[1].opt_ml.model_dir().join("manifest.json").exists());
}
