//! `serve` over real HTTP on loopback, with a model trained by the real `train`.

use common::artifact::Manifest;
use common::datagen::Layout;
use common::models::ensemble::FireEnsemble;
use e2e::{fire_bytes, sample_payload, train_small_fire_model, Sandbox, Server};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One small trained model shared by the tests that only read it.
fn trained() -> &'static Sandbox {
    static MODEL: OnceLock<Sandbox> = OnceLock::new();
    MODEL.get_or_init(|| {
        let s = Sandbox::new();
        train_small_fire_model(&s, 3000);
        s
    })
}

/// Feature rows without labels, as CSV.
fn csv_rows(rows: usize, seed: u64) -> Vec<u8> {
    let labelled = String::from_utf8(fire_bytes(rows, seed, Layout::CsvLabelFirst)).unwrap();
    labelled
        .lines()
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect::<String>()
        .into_bytes()
}

fn ct(t: &str) -> (&'static str, &str) {
    ("Content-Type", t)
}

#[test]
fn every_sample_payload_and_output_format() {
    let server = Server::ready(&trained().opt_ml, &[]);
    let cases = [
        ("fire-single.json", "application/json", 1),
        ("fire-features.json", "application/json", 1),
        ("fire-instances.json", "application/json", 5),
        ("fire-arrays.json", "application/json", 5),
        ("fire-single.csv", "text/csv", 1),
        ("fire-batch.csv", "text/csv; charset=utf-8", 5),
        ("fire-batch.jsonl", "application/jsonlines", 5),
    ];
    for (file, content_type, records) in cases {
        let body = sample_payload(file);
        let r = server.request("POST", "/invocations", &[ct(content_type)], &body);
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let preds = v["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), records, "{file}");
        for p in preds {
            let prob = p["ensemble_probability"].as_f64().unwrap();
            assert_eq!(
                p["ensemble_prediction"].as_u64().unwrap(),
                u64::from(prob > 0.5)
            );
            assert_eq!(p["individual_probabilities"].as_object().unwrap().len(), 3);
            assert_eq!(p["individual_predictions"].as_object().unwrap().len(), 3);
        }
        let csv = server.request(
            "POST",
            "/invocations",
            &[ct(content_type), ("Accept", "text/csv")],
            &body,
        );
        assert_eq!(
            (csv.status, csv.header("content-type")),
            (200, Some("text/csv"))
        );
        assert_eq!(csv.text().lines().count(), records);
        let jl = server.request(
            "POST",
            "/invocations",
            &[ct(content_type), ("Accept", "application/jsonlines")],
            &body,
        );
        assert_eq!(jl.text().lines().count(), records, "{file}");
    }
    // The hot, high-CO2 reading in the samples is called fire.
    let hot = server.request(
        "POST",
        "/invocations",
        &[ct("application/json")],
        &sample_payload("fire-features.json"),
    );
    let v: serde_json::Value = serde_json::from_slice(&hot.body).unwrap();
    assert_eq!(
        v["predictions"][0]["ensemble_prediction"],
        1,
        "{}",
        hot.text()
    );
}

#[test]
fn served_predictions_equal_the_trained_model() {
    let sandbox = trained();
    let server = Server::ready(&sandbox.opt_ml, &[]);
    let body = csv_rows(500, 77);
    let r = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv"), ("Accept", "text/csv")],
        &body,
    );
    assert_eq!(r.status, 200);
    let dir = sandbox.opt_ml.model_dir();
    let model = FireEnsemble::load(&dir, &Manifest::load(&dir).unwrap()).unwrap();
    let values: Vec<f32> = String::from_utf8(body)
        .unwrap()
        .lines()
        .flat_map(|l| {
            l.split(',')
                .map(|v| v.parse::<f64>().unwrap() as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let x = ndarray::Array2::from_shape_vec((500, 18), values).unwrap();
    let want = model.predict(x.view()).unwrap();
    for (i, line) in r.text().lines().enumerate() {
        let got: Vec<f32> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert!(
            (got[1] - want.ensemble[i]).abs() <= 1e-6,
            "row {i}: {} vs {}",
            got[1],
            want.ensemble[i]
        );
        for (k, (_, member)) in want.members.iter().enumerate() {
            assert!((got[2 + k] - member[i]).abs() <= 1e-6, "row {i} member {k}");
        }
    }
}

#[test]
fn status_codes_for_bad_requests() {
    let server = Server::ready(&trained().opt_ml, &[]);
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        server.request("POST", "/invocations", headers, body)
    };
    let r = post(&[ct("application/x-parquet")], b"1");
    assert_eq!(r.status, 415, "{}", r.text());
    let r = post(
        &[
            ct("text/csv"),
            (
                "X-Amzn-SageMaker-Custom-Attributes",
                "output=predicted_label",
            ),
        ],
        &sample_payload("fire-single.csv"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no keys to choose"), "{}", r.text());
    let r = post(
        &[ct("text/csv"), ("Accept", "text/html")],
        &sample_payload("fire-single.csv"),
    );
    assert_eq!(r.status, 406, "{}", r.text());
    for (body, content_type, want) in [
        (
            &b"1,2,3\n"[..],
            "text/csv",
            "record 1 (line 1): expected 18 values, found 3",
        ),
        (&b""[..], "text/csv", "empty body"),
        (
            br#"{"t_mean": 1}"#,
            "application/json",
            "record 1: missing feature 't_std'",
        ),
        (b"{oops", "application/json", "not valid JSON"),
    ] {
        let r = post(&[ct(content_type)], body);
        assert_eq!(r.status, 400, "{}", r.text());
        let msg = r.text();
        assert!(
            msg.contains(want) && msg.len() < 1024 && !msg.contains("/tmp"),
            "{msg}"
        );
    }
    let mut csv = sample_payload("fire-batch.csv");
    csv.extend_from_slice(b"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,hot\n");
    let r = post(&[ct("text/csv")], &csv);
    assert!(
        r.text()
            .contains("record 6 (line 6): value 18 is not a number: \\\"hot\\\""),
        "{}",
        r.text()
    );
    // 7 MiB is over the 6 MiB real-time default, declared or chunked.
    let big = vec![b'1'; 7 * 1024 * 1024];
    assert_eq!(post(&[ct("text/csv")], &big).status, 413);
    assert_eq!(
        server.post_chunked(&[ct("text/csv")], &big, 1 << 20).status,
        413
    );
    let r = server.request("GET", "/execution-parameters", &[], b"");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["BatchStrategy"], "MULTI_RECORD");
    assert!(
        v["MaxConcurrentTransforms"].as_u64().unwrap() * v["MaxPayloadInMB"].as_u64().unwrap()
            <= 100
    );
}

#[test]
fn batch_mode_answers_one_line_per_input_line_up_to_100_mib() {
    let server = Server::ready(&trained().opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    let body = csv_rows(10_000, 5);
    for accept in ["text/csv", "application/json", "application/jsonlines"] {
        let r = server.request(
            "POST",
            "/invocations",
            &[ct("text/csv"), ("Accept", accept)],
            &body,
        );
        assert_eq!(r.status, 200, "{accept}: {}", r.text());
        assert_eq!(r.text().lines().count(), 10_000, "{accept}");
        assert!(r.text().ends_with('\n'));
    }
    let one = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv")],
        &sample_payload("fire-single.csv"),
    );
    assert_eq!(one.text().lines().count(), 1);
    assert!(one.text().ends_with('\n'));
    let jl = server.request(
        "POST",
        "/invocations",
        &[ct("application/jsonlines")],
        &sample_payload("fire-batch.jsonl"),
    );
    assert_eq!(jl.text().lines().count(), 5);
    // A blank line inside a batch body would shift every later output line: refused.
    let r = server.request("POST", "/invocations", &[ct("text/csv")], b"1,2\n\n");
    assert_eq!(r.status, 400);
    // About 100 MiB, chunked, as SageMaker sends MULTI_RECORD payloads.
    let mut big = Vec::with_capacity(100 << 20);
    while big.len() + body.len() <= 100 << 20 {
        big.extend_from_slice(&body);
    }
    let lines = big.iter().filter(|&&b| b == b'\n').count();
    let r = server.post_chunked(&[ct("text/csv"), ("Accept", "text/csv")], &big, 4 << 20);
    assert_eq!(r.status, 200, "{}", &r.text()[..r.text().len().min(300)]);
    assert_eq!(r.text().lines().count(), lines);
}

/// Large bodies and their feature matrices are kept for the next request (`serve::buffers`): a
/// shorter body after a longer one is answered for its own records only, the same as when it
/// came first into fresh buffers.
#[test]
fn reused_buffers_hold_only_the_request_s_own_records() {
    let server = Server::ready(&trained().opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    let (long, short) = (csv_rows(8_000, 11), csv_rows(2_500, 12));
    // Bodies and matrices (2,500 rows x 18 features x 4 bytes) large enough to be kept.
    assert!(short.len() > 128 << 10 && 2_500 * 18 * 4 > 128 << 10);
    let answer = |body: &[u8]| {
        let r = server.request("POST", "/invocations", &[ct("text/csv")], body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let (short_first, long_first) = (answer(&short), answer(&long));
    assert_eq!(short_first.lines().count(), 2_500);
    assert_eq!(long_first.lines().count(), 8_000);
    for _ in 0..3 {
        assert_eq!(answer(&short), short_first);
        assert_eq!(answer(&long), long_first);
    }
    // Chunked (no Content-Length): a new buffer for the body, a kept one for the matrix.
    let chunked = server.post_chunked(&[ct("text/csv")], &short, 64 << 10);
    assert_eq!(chunked.status, 200, "{}", chunked.text());
    assert_eq!(chunked.text(), short_first);
}

/// From 1,024 rows a request's forest and boosting are walked side by side (one model of two
/// outputs); its answers are the same text as those of requests small enough to walk each
/// member on its own.
#[test]
fn large_requests_answer_as_small_ones_do() {
    let server = Server::ready(&trained().opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    let body = csv_rows(3_000, 21);
    let answer = |body: &[u8]| {
        let r = server.request("POST", "/invocations", &[ct("text/csv")], body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let whole = answer(&body);
    let lines: Vec<&str> = std::str::from_utf8(&body).unwrap().lines().collect();
    let in_pieces: String = lines
        .chunks(300)
        .map(|piece| answer(format!("{}\n", piece.join("\n")).as_bytes()))
        .collect();
    assert_eq!(whole.lines().count(), 3_000);
    assert_eq!(whole, in_pieces);
}

#[test]
fn concurrent_requests_all_succeed() {
    let server = Server::ready(&trained().opt_ml, &[]);
    let body = sample_payload("fire-batch.csv");
    let expected = server
        .request("POST", "/invocations", &[ct("text/csv")], &body)
        .body;
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                for _ in 0..20 {
                    let r = server.request("POST", "/invocations", &[ct("text/csv")], &body);
                    assert_eq!(r.status, 200);
                    assert_eq!(r.body, expected);
                }
            });
        }
    });
}

#[test]
fn sigterm_under_load_finishes_requests_and_exits_promptly() {
    let mut server = Server::ready(&trained().opt_ml, &[]);
    let body = csv_rows(2000, 9);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, refused) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let (mut ok, mut refused) = (0, 0);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match server.try_request("POST", "/invocations", &[ct("text/csv")], &body) {
                            Ok(r) => {
                                assert_eq!(r.status, 200, "{}", r.text());
                                ok += 1;
                            }
                            Err(_) => refused += 1,
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        server.terminate();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    let t = Instant::now();
    let status = server.wait();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        ok > 0,
        "no request succeeded before the stop (refused {refused})"
    );
    assert!(server.log().contains("shutdown requested"));
}

#[test]
fn missing_or_corrupt_model_gives_a_non_200_ping_and_a_clear_log_line() {
    let empty = Sandbox::new();
    let server = Server::start(&empty.opt_ml, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = server
            .try_request("GET", "/ping", &[], b"")
            .map(|r| r.status)
            .unwrap_or(0);
        if s == 500 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 500);
    assert_eq!(
        server
            .request("POST", "/invocations", &[ct("text/csv")], b"1")
            .status,
        500
    );
    assert!(
        server
            .log()
            .contains("cannot serve: Model artifact error: no manifest.json"),
        "{}",
        server.log()
    );

    let corrupt = Sandbox::new();
    std::fs::write(
        corrupt.opt_ml.model_dir().join("manifest.json"),
        "{ not json",
    )
    .unwrap();
    let server = Server::start(&corrupt.opt_ml, &[]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.request("GET", "/ping", &[], b"").status, 500);
    assert!(
        server.log().contains("manifest.json is malformed"),
        "{}",
        server.log()
    );
}

#[test]
fn model_tarball_is_served_without_writing_into_the_model_dir() {
    let src = trained().opt_ml.model_dir();
    let s = Sandbox::new();
    let tarball = s.opt_ml.model_dir().join("model.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::ready(&s.opt_ml, &[]);
    let r = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv")],
        &sample_payload("fire-single.csv"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read_dir(s.opt_ml.model_dir()).unwrap().count(),
        1,
        "nothing written into the model dir"
    );
}

#[test]
fn a_full_queue_answers_503_instead_of_waiting() {
    let server = Server::ready(
        &trained().opt_ml,
        &[
            ("SERVE_MAX_IN_FLIGHT", "1"),
            ("SAGEMAKER_MODEL_SERVER_WORKERS", "1"),
        ],
    );
    let body = csv_rows(10_000, 12);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    server
                        .request("POST", "/invocations", &[ct("text/csv")], &body)
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&200) && statuses.contains(&503),
        "{statuses:?}"
    );
    // /ping is not part of the queue.
    assert_eq!(server.request("GET", "/ping", &[], b"").status, 200);
}

#[test]
fn transform_command_splits_a_file_and_assembles_the_answers_in_order() {
    let server = Server::ready(&trained().opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    let dir = tempfile::tempdir().unwrap();
    // About 10 MB: two payloads at the 6 MB the server asks for.
    let body = csv_rows(30_000, 14);
    let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
    std::fs::write(&input, &body).unwrap();
    let run = |input: &std::path::Path| {
        std::process::Command::new(e2e::binary("serve"))
            .args(["transform", "--addr", &format!("127.0.0.1:{}", server.port)])
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap()
    };
    let out = run(&input);
    assert!(out.status.success(), "{}", e2e::text(&out.stderr));
    assert!(
        e2e::text(&out.stderr).contains("30000 records in 2 payloads"),
        "{}",
        e2e::text(&out.stderr)
    );
    let direct = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv"), ("Accept", "text/csv")],
        &body,
    );
    assert_eq!(std::fs::read(&output).unwrap(), direct.body);

    let mut bad = body.clone();
    bad.extend_from_slice(b"1,2,3\n");
    std::fs::write(&input, &bad).unwrap();
    let out = run(&input);
    assert!(!out.status.success());
    assert!(
        e2e::text(&out.stderr).contains("the server answered 400"),
        "{}",
        e2e::text(&out.stderr)
    );
}

#[test]
fn an_explanation_past_its_deadline_stops_computing() {
    // A request answered 504 at its deadline does not go on explaining its records unseen,
    // holding a worker (and, on a multi-model endpoint, the model's unload).
    let server = Server::ready(
        &trained().opt_ml,
        &[
            ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "1"),
            ("SAGEMAKER_BATCH", "true"),
        ],
    );
    let body = csv_rows(250_000, 5);
    let started = std::time::Instant::now();
    let r = server.request(
        "POST",
        "/invocations",
        &[
            ct("text/csv"),
            ("X-Amzn-SageMaker-Custom-Attributes", "output=contributions"),
        ],
        &body,
    );
    assert_eq!(r.status, 504, "{:?}: {}", started.elapsed(), r.text());
    // Within a fraction of a second of the deadline the server is idle again: over the next
    // 2 s it takes well under a core-second (explaining on would take both cores).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = server.cpu_ticks();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let ticks = server.cpu_ticks() - before;
    assert!(ticks < 50, "{ticks} ticks of CPU in 2 s after the 504");
}

#[test]
fn fire_contributions_sum_to_the_ensemble_probability_in_every_format() {
    // A model only root may read (as `mktemp -d` makes it): `serve`, started as root, gives
    // root up once loaded, so what explanations need must have been read by then.
    let s = Sandbox::new();
    train_small_fire_model(&s, 3000);
    use std::os::unix::fs::PermissionsExt;
    let root = s.opt_ml.root();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = Server::ready(&s.opt_ml, &[]);
    let body = csv_rows(300, 77);
    let ask = |accept: &str| {
        let r = server.request(
            "POST",
            "/invocations",
            &[
                ct("text/csv"),
                ("Accept", accept),
                ("X-Amzn-SageMaker-Custom-Attributes", "output=contributions"),
            ],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    let json = ask("application/json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let records = v["predictions"].as_array().unwrap();
    assert_eq!(records.len(), 300);
    let mut spread = 0f64;
    for r in records {
        let phi = e2e::floats(&r["contributions"]);
        assert_eq!(phi.len(), 19, "18 features and the bias");
        let p = r["ensemble_probability"].as_f64().unwrap();
        let sum: f64 = phi.iter().sum();
        assert!((sum - p).abs() < 1e-4, "sum {sum} vs probability {p}");
        spread += phi[..18].iter().map(|c| c.abs()).sum::<f64>();
        // The answer's own keys are all still there.
        assert!(r["individual_probabilities"].is_object());
    }
    assert!(spread > 1.0, "the features explain something: {spread}");
    // CSV: the record's fields, then the contributions as one quoted list.
    let csv = ask("text/csv");
    let first = csv.lines().next().unwrap();
    let (fields, list) = first.split_once(",\"[").unwrap();
    assert_eq!(
        fields.split(',').count(),
        5,
        "label, probability, 3 members: {first}"
    );
    assert_eq!(
        list.trim_end_matches("]\"").split(", ").count(),
        19,
        "{first}"
    );
    // Without the key, answers are as before.
    let plain = server.request("POST", "/invocations", &[ct("text/csv")], &body);
    assert!(!plain.text().contains("contributions"));
}
