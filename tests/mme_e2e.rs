//! Multi-model endpoints with the real `serve` binary on loopback: SageMaker's model API, models
//! of every kind side by side, loads and invokes at once, paging, and every refusal.

use e2e::{sample_payload, Reply, Sandbox, Server};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One small model per kind, trained once for this module: `(kind, model directory)`.
fn models() -> &'static Vec<(&'static str, Sandbox)> {
    static MODELS: OnceLock<Vec<(&'static str, Sandbox)>> = OnceLock::new();
    MODELS.get_or_init(|| {
        ["fire", "iops", "tabular"]
            .into_iter()
            .map(|kind| {
                let s = Sandbox::new();
                e2e::train_small_model(&s, kind);
                (kind, s)
            })
            .collect()
    })
}

fn sandbox(kind: &str) -> &'static Sandbox {
    &models().iter().find(|(k, _)| *k == kind).unwrap().1
}

fn model_dir(kind: &str) -> PathBuf {
    sandbox(kind).opt_ml.model_dir()
}

fn mme_server(envs: &[(&str, &str)]) -> (Server, Sandbox) {
    let root = Sandbox::new();
    let mut all = vec![("SAGEMAKER_MULTI_MODEL", "true")];
    all.extend_from_slice(envs);
    (Server::ready(&root.opt_ml, &all), root)
}

fn load(s: &Server, name: &str, url: &Path) -> Reply {
    let body = serde_json::json!({"model_name": name, "url": url}).to_string();
    s.request("POST", "/models", &[], body.as_bytes())
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn invoke(s: &Server, name: &str, content_type: &str, body: &[u8]) -> Reply {
    s.request(
        "POST",
        &format!("/models/{name}/invoke"),
        &[("Content-Type", content_type), ("Accept", "text/csv")],
        body,
    )
}

#[test]
fn the_model_api_sequence_with_every_kind_side_by_side() {
    let (s, _root) = mme_server(&[]);
    assert_eq!(s.request("GET", "/ping", &[], b"").status, 200);
    assert_eq!(
        json(&s.request("GET", "/models", &[], b"")),
        serde_json::json!({"models": []})
    );

    let samples = [
        ("fire", "fire-batch.csv", 5),
        ("iops", "iops-batch.csv", 8),
        ("tabular", "housing-batch.csv", 5),
    ];
    for (kind, _, _) in samples {
        let r = load(&s, kind, &model_dir(kind));
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
    }
    let r = load(&s, "fire", &model_dir("fire"));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already loaded"), "{}", r.text());

    // Every kind answers through its own route, the same as /invocations would.
    for (kind, file, records) in samples {
        let r = invoke(&s, kind, "text/csv", &sample_payload(file));
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        assert_eq!(r.text().lines().count(), records, "{kind}");
        let single = Server::ready(&sandbox(kind).opt_ml, &[]);
        let want = single.request(
            "POST",
            "/invocations",
            &[("Content-Type", "text/csv"), ("Accept", "text/csv")],
            &sample_payload(file),
        );
        assert_eq!(
            r.body, want.body,
            "{kind}: same answer as the single-model endpoint"
        );
    }
    let r = invoke(&s, "fire", "application/json", b"{\"t_mean\": 1}");
    assert_eq!(
        r.status,
        400,
        "request errors are the same too: {}",
        r.text()
    );
    assert!(r.text().contains("missing feature"), "{}", r.text());

    let described = json(&s.request("GET", "/models/iops", &[], b""));
    assert_eq!(described["modelName"], "iops");
    assert_eq!(described["modelUrl"], model_dir("iops").to_str().unwrap());
    let listed = json(&s.request("GET", "/models", &[], b""));
    let names: Vec<_> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["fire", "iops", "tabular"]);

    let r = s.request("DELETE", "/models/fire", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = invoke(&s, "fire", "text/csv", &sample_payload("fire-batch.csv"));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.text().contains("model 'fire' is not loaded"),
        "{}",
        r.text()
    );
    assert_eq!(s.request("DELETE", "/models/fire", &[], b"").status, 404);
    assert_eq!(s.request("GET", "/models/fire", &[], b"").status, 404);
    let r = invoke(
        &s,
        "tabular",
        "text/csv",
        &sample_payload("housing-batch.csv"),
    );
    assert_eq!(
        r.status,
        200,
        "the other models are untouched: {}",
        r.text()
    );
    assert_eq!(
        json(&s.request("GET", "/models", &[], b""))["models"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Unloaded, the name is free again.
    assert_eq!(load(&s, "fire", &model_dir("fire")).status, 200);
}

/// A directory under `root`'s models holding only `kind`'s model as `model.tar.gz`, as
/// SageMaker leaves a custom image's model (it unpacks nothing).
fn packed_model(root: &Sandbox, kind: &str) -> PathBuf {
    let packed = root.opt_ml.root().join("models/packed/model");
    std::fs::create_dir_all(&packed).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(packed.join("model.tar.gz"))
        .arg("-C")
        .arg(model_dir(kind))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    packed
}

/// The `charged_kib` of the log's "model loaded" line for `name`.
fn charged_kib(s: &Server, name: &str) -> u64 {
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("model loaded") && l.contains(&format!("model={name} ")))
        .unwrap_or_else(|| panic!("no load of {name} in {log}"));
    let at = line.find("charged_kib=").expect("charged_kib") + "charged_kib=".len();
    line[at..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_fire_model_tar_gz_is_charged_the_explanation_files_it_reads_ahead() {
    // Unpacked from an archive, a fire model reads its XGBoost files ahead for explanations
    // (the archive's files are removed after the load): they are charged, not only the
    // compiled trees a directory's model holds.
    let (s, root) = mme_server(&[]);
    let packed = packed_model(&root, "fire");
    assert_eq!(load(&s, "plain", &model_dir("fire")).status, 200);
    assert_eq!(load(&s, "packed", &packed).status, 200);
    let ubj_kib: u64 = std::fs::read_dir(model_dir("fire"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ubj"))
        .map(|p| std::fs::metadata(p).unwrap().len() >> 10)
        .sum();
    let (plain, packed) = (charged_kib(&s, "plain"), charged_kib(&s, "packed"));
    assert!(ubj_kib > 0);
    assert!(
        packed >= plain + ubj_kib,
        "{packed} KiB against {plain} + {ubj_kib}"
    );
}

#[test]
fn a_model_tar_gz_loads_and_bad_requests_are_refused_with_a_reason() {
    let (s, root) = mme_server(&[]);
    // A directory holding only model.tar.gz, as SageMaker unpacks nothing for custom images.
    let packed = packed_model(&root, "tabular");
    let r = load(&s, "packed", &packed);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = invoke(
        &s,
        "packed",
        "text/csv",
        &sample_payload("housing-single.csv"),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let empty = root.opt_ml.root().join("models/empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (body, status, says) in [
        (
            serde_json::json!({"model_name": "x", "url": "/no/such/dir"}).to_string(),
            404,
            "no model directory at /no/such/dir",
        ),
        (
            serde_json::json!({"model_name": "x", "url": empty}).to_string(),
            400,
            "no manifest.json",
        ),
        (
            "{\"url\": \"/x\"}".into(),
            400,
            "missing field `model_name`",
        ),
        ("not json".into(), 400, "model_name"),
        (
            serde_json::json!({"model_name": "", "url": "/x"}).to_string(),
            400,
            "model_name must be",
        ),
    ] {
        let r = s.request("POST", "/models", &[], body.as_bytes());
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
        assert!(!r.text().contains('\n'), "one line: {}", r.text());
    }
    // A failed load leaves the name free.
    assert_eq!(
        json(&s.request("GET", "/models", &[], b""))["models"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv")],
        &sample_payload("housing-single.csv"),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("/models/<name>/invoke"), "{}", r.text());
    assert_eq!(s.request("GET", "/models?limit=x", &[], b"").status, 400);
    assert_eq!(
        s.request("GET", "/models?next_page_token=zz", &[], b"")
            .status,
        400
    );
}

#[test]
fn listing_pages_through_every_model_once() {
    let (s, _root) = mme_server(&[]);
    for i in 0..7 {
        assert_eq!(load(&s, &format!("m{i}"), &model_dir("iops")).status, 200);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/models?limit=3&next_page_token={t}"),
            None => "/models?limit=3".into(),
        };
        let page = json(&s.request("GET", &path, &[], b""));
        let models = page["models"].as_array().unwrap();
        assert!(models.len() <= 3);
        seen.extend(
            models
                .iter()
                .map(|m| m["modelName"].as_str().unwrap().to_owned()),
        );
        match page.get("nextPageToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, want);
}

#[test]
fn loads_unloads_and_invokes_run_at_once_without_mixing_models() {
    let (s, _root) = mme_server(&[]);
    assert_eq!(load(&s, "steady", &model_dir("tabular")).status, 200);
    let want = invoke(
        &s,
        "steady",
        "text/csv",
        &sample_payload("housing-batch.csv"),
    )
    .body;
    std::thread::scope(|scope| {
        // One thread keeps asking the steady model while others load and unload other models.
        let s = &s;
        let asker = scope.spawn(|| {
            for _ in 0..60 {
                let r = invoke(
                    s,
                    "steady",
                    "text/csv",
                    &sample_payload("housing-batch.csv"),
                );
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(r.body, want);
            }
        });
        let churners: Vec<_> = (0..3)
            .map(|t| {
                scope.spawn(move || {
                    let kind = ["fire", "iops", "tabular"][t];
                    for round in 0..5 {
                        let name = format!("{kind}-{round}");
                        let r = load(s, &name, &model_dir(kind));
                        assert_eq!(r.status, 200, "{name}: {}", r.text());
                        let file = ["fire-batch.csv", "iops-batch.csv", "housing-batch.csv"][t];
                        let r = invoke(s, &name, "text/csv", &sample_payload(file));
                        assert_eq!(r.status, 200, "{name}: {}", r.text());
                        let r = s.request("DELETE", &format!("/models/{name}"), &[], b"");
                        assert_eq!(r.status, 200, "{name}: {}", r.text());
                    }
                })
            })
            .collect();
        for c in churners {
            c.join().unwrap();
        }
        asker.join().unwrap();
    });
    // The same name loaded by several clients at once: one wins, the others hear 409.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let s = &s;
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| load(s, "contested", &model_dir("fire")).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&c| c == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&c| c == 200 || c == 409),
        "{statuses:?}"
    );
}

#[test]
fn a_load_beyond_the_memory_budget_answers_507_and_an_unload_makes_room() {
    // A budget of 24 MiB stands in for a small container here; the real
    // cgroup limit is tested on the Docker engine (docker_e2e).
    let limit = common::memory::limit_bytes().unwrap();
    let fraction = (24u64 << 20) as f64 / limit as f64;
    let fraction = fraction.to_string();
    let (s, _root) = mme_server(&[("SERVE_MODEL_MEMORY_FRACTION", fraction.as_str())]);
    let mut loaded = 0;
    let full = loop {
        let r = load(&s, &format!("m{loaded}"), &model_dir("fire"));
        if r.status != 200 {
            break r;
        }
        loaded += 1;
        assert!(loaded < 2000, "never ran out of a 24 MiB budget");
    };
    assert_eq!(full.status, 507, "{}", full.text());
    assert!(full.text().contains("not enough memory"), "{}", full.text());
    assert!(loaded >= 1, "not even one model fitted");
    let r = s.request("DELETE", "/models/m0", &[], b"");
    assert_eq!(r.status, 200);
    let r = load(&s, "again", &model_dir("fire"));
    assert_eq!(r.status, 200, "after an unload: {}", r.text());
}

#[test]
fn unloading_gives_the_memory_back_to_the_system() {
    let (s, _root) = mme_server(&[]);
    let start = s.resident_kib();
    for i in 0..200 {
        assert_eq!(load(&s, &format!("m{i}"), &model_dir("fire")).status, 200);
    }
    let full = s.resident_kib();
    for i in 0..200 {
        assert_eq!(
            s.request("DELETE", &format!("/models/m{i}"), &[], b"")
                .status,
            200
        );
    }
    let emptied = s.resident_kib();
    let held = full - start;
    eprintln!("200 small fire models: {start} -> {full} -> {emptied} KiB resident");
    assert!(held > 2000, "200 models hold {held} KiB?");
    // Small models are many small blocks; what the allocator cannot hand back is reused.
    assert!(
        emptied < start + held * 2 / 5,
        "unloading kept {} of {held} KiB",
        emptied - start
    );
}
