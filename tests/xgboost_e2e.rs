//! XGBoost models trained elsewhere, as SageMaker's built-in algorithm leaves them (a file named
//! `xgboost-model`, no manifest), served by the real binary and compared with XGBoost's own
//! predictions (the same library Python XGBoost 3.x is built on, which writes the same files).

use common::models::xgboost::{self as xgb_util, XgbParams};
use e2e::{Reply, Sandbox, Server};
use ndarray::{Array1, Array2};

const FEATURES: usize = 4;

/// Rows with about 5 % missing values, and labels for regression, binary and 3 classes.
pub(crate) fn data(rows: usize) -> (Array2<f32>, Array1<f32>, Array1<f32>, Array1<f32>) {
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32) / (1u64 << 31) as f32
    };
    let x = Array2::from_shape_fn((rows, FEATURES), |_| {
        let v = next() * 10.0;
        if next() < 0.05 {
            f32::NAN
        } else {
            v
        }
    });
    let value = |r: usize| {
        let a = x[[r, 0]];
        let b = x[[r, 1]];
        (if a.is_nan() { 5.0 } else { a }) + 0.5 * (if b.is_nan() { 2.0 } else { b })
    };
    let reg = Array1::from_shape_fn(rows, |r| value(r) + 1.0);
    let bin = Array1::from_shape_fn(rows, |r| f32::from(value(r) > 7.0));
    let multi = Array1::from_shape_fn(rows, |r| (value(r) / 5.0).floor().min(2.0));
    (x, reg, bin, multi)
}

/// Trains `objective` with XGBoost and returns the booster.
fn booster(objective: &str, x: &Array2<f32>, y: &Array1<f32>, seed: u32) -> xgb::Booster {
    let mut p = XgbParams::default()
        .set("objective", objective)
        .set("max_depth", 4)
        .set("seed", seed)
        .set("subsample", 0.8)
        .set("nthread", 1);
    if objective.starts_with("multi:") {
        p = p.set("num_class", 3);
    }
    let m = xgb_util::dmatrix(x.view(), Some(y)).unwrap();
    xgb_util::train_rounds(&p, &[(&m, "train")], 20, &mut |_| Ok(true)).unwrap()
}

pub(crate) fn csv(x: &Array2<f32>) -> String {
    x.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|v| {
                    if v.is_nan() {
                        String::new()
                    } else {
                        v.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect()
}

/// A model directory holding `files` (name, bytes), and a server for it.
pub(crate) fn serve(files: &[(&str, Vec<u8>)], envs: &[(&str, &str)]) -> (Sandbox, Server) {
    let s = Sandbox::new();
    let dir = s.opt_ml.model_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let server = Server::start(&s.opt_ml, envs);
    (s, server)
}

pub(crate) fn wait_loaded(server: &Server) -> u16 {
    for _ in 0..500 {
        match server.try_request("GET", "/ping", &[], b"") {
            Ok(r) if r.status != 503 => return r.status,
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("never loaded: {}", server.log());
}

pub(crate) fn post(server: &Server, body: &str, accept: Option<&str>) -> Reply {
    let mut headers = vec![("Content-Type", "text/csv")];
    if let Some(a) = accept {
        headers.push(("Accept", a));
    }
    server.request("POST", "/invocations", &headers, body.as_bytes())
}

pub(crate) fn numbers(text: &str) -> Vec<f32> {
    text.split([',', '\n', '[', ']', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

pub(crate) fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{what}: value {i}: ours {a}, XGBoost {b}"
        );
    }
}

#[test]
fn every_objective_in_json_and_ubjson_answers_as_xgboost_predicts() {
    let (x, reg, bin, multi) = data(600);
    let body = csv(&x.slice(ndarray::s![..50, ..]).to_owned());
    let d = xgb_util::dmatrix(x.slice(ndarray::s![..50, ..]), None).unwrap();
    for (objective, y) in [
        ("reg:squarederror", &reg),
        ("reg:logistic", &bin),
        ("binary:logistic", &bin),
        ("binary:logitraw", &bin),
        ("binary:hinge", &bin),
        ("multi:softprob", &multi),
        ("multi:softmax", &multi),
        ("count:poisson", &reg),
        ("reg:gamma", &reg),
        ("reg:tweedie", &reg),
        ("reg:absoluteerror", &reg),
    ] {
        let b = booster(objective, &x, y, 1);
        let want = b.predict(&d).unwrap();
        for binary in [false, true] {
            let bytes = b.save_buffer(binary).unwrap();
            let (_s, server) = serve(&[("xgboost-model", bytes)], &[]);
            assert_eq!(wait_loaded(&server), 200, "{objective}: {}", server.log());
            // The built-in's default: CSV, every record on one line, joined by commas.
            let r = post(&server, &body, None);
            assert_eq!(r.status, 200, "{objective}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("text/csv"));
            assert_eq!(r.text().lines().count(), 1, "{objective}");
            close(&numbers(&r.text()), &want, objective);
            let r = post(&server, &body, Some("application/json"));
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(json["predictions"].as_array().unwrap().len(), 50);
        }
    }
}

/// A model with categorical splits (features 0 and 3 declared categorical to XGBoost), served
/// with categories seen and unseen in training.
#[test]
fn categorical_splits_answer_as_xgboost_predicts() {
    let (x, reg, _, _) = data(600);
    let categories = x.mapv(|v| if v.is_nan() { v } else { v.floor() });
    let mut m = xgb_util::dmatrix(categories.view(), Some(&reg)).unwrap();
    m.set_feature_types(&["c", "q", "q", "c"]).unwrap();
    let p = XgbParams::default().set("max_depth", 4).set("nthread", 1);
    let b = xgb_util::train_rounds(&p, &[(&m, "train")], 20, &mut |_| Ok(true)).unwrap();
    let mut rows = categories.slice(ndarray::s![..40, ..]).to_owned();
    rows[[0, 0]] = 42.0; // a category training never saw
    rows[[1, 3]] = -2.0; // no category at all
    let mut d = xgb_util::dmatrix(rows.view(), None).unwrap();
    d.set_feature_types(&["c", "q", "q", "c"]).unwrap();
    let want = b.predict(&d).unwrap();
    let (_s, server) = serve(&[("xgboost-model", b.save_buffer(true).unwrap())], &[]);
    assert_eq!(wait_loaded(&server), 200, "{}", server.log());
    close(
        &numbers(&post(&server, &csv(&rows), None).text()),
        &want,
        "categorical",
    );
}

/// Contributions (`contributions` key): per request through the custom attribute, or for the
/// endpoint through `SAGEMAKER_INFERENCE_OUTPUT`, equal to XGBoost's `pred_contribs` for a
/// binary and a 3-class model with missing values, in JSON and CSV; refused for an ensemble.
#[test]
fn contributions_answer_as_xgboost_pred_contribs() {
    let (x, _, bin, multi) = data(600);
    let rows = x.slice(ndarray::s![..30, ..]).to_owned();
    let body = csv(&rows);
    let d = xgb_util::dmatrix(rows.view(), None).unwrap();
    for (objective, y) in [("binary:logistic", &bin), ("multi:softprob", &multi)] {
        let b = booster(objective, &x, y, 3);
        let (want, _) = b.predict_contributions(&d).unwrap();
        let (_s, server) = serve(&[("xgboost-model", b.save_buffer(true).unwrap())], &[]);
        assert_eq!(wait_loaded(&server), 200, "{}", server.log());
        let headers = [
            ("Content-Type", "text/csv"),
            ("Accept", "application/json"),
            ("X-Amzn-SageMaker-Custom-Attributes", "output=contributions"),
        ];
        let r = server.request("POST", "/invocations", &headers, body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let got: Vec<f32> = json["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["contributions"].as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        close(&got, &want, objective);
        // CSV: one record per line, the list quoted.
        let csv_headers = [headers[0], ("Accept", "text/csv"), headers[2]];
        let r = server.request("POST", "/invocations", &csv_headers, body.as_bytes());
        assert_eq!(r.text().lines().count(), 30);
        close(&numbers(&r.text().replace('"', "")), &want, objective);
    }
    // The endpoint's default keys, with the prediction beside the explanation.
    let b = booster("binary:logistic", &x, &bin, 3);
    let (want, _) = b.predict_contributions(&d).unwrap();
    let model = b.save_buffer(true).unwrap();
    let (_s, server) = serve(
        &[("xgboost-model", model.clone())],
        &[("SAGEMAKER_INFERENCE_OUTPUT", "probability,contributions")],
    );
    assert_eq!(wait_loaded(&server), 200, "{}", server.log());
    let r = post(&server, &body, Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let first = &json["predictions"][0];
    assert!(first["probability"].is_number(), "{first}");
    let got: Vec<f32> = first["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    close(&got, &want[..FEATURES + 1], "SAGEMAKER_INFERENCE_OUTPUT");
    // A file without node covers cannot be explained: refused when the endpoint loads.
    let json = String::from_utf8(b.save_buffer(false).unwrap()).unwrap();
    let stripped = json.replace("\"sum_hessian\"", "\"no_covers\"");
    let (_s, server) = serve(
        &[("xgboost-model", stripped.into_bytes())],
        &[("SAGEMAKER_INFERENCE_OUTPUT", "contributions")],
    );
    assert_eq!(wait_loaded(&server), 500);
    assert!(
        server.log().contains("no usable node covers"),
        "{}",
        server.log()
    );
    // Two files are an ensemble: nothing single to explain.
    let (_s, server) = serve(&[("a", model.clone()), ("b", model)], &[]);
    assert_eq!(wait_loaded(&server), 200, "{}", server.log());
    let headers = [
        ("Content-Type", "text/csv"),
        ("X-Amzn-SageMaker-Custom-Attributes", "output=contributions"),
    ];
    let r = server.request("POST", "/invocations", &headers, body.as_bytes());
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("contributions explain one model"),
        "{}",
        r.text()
    );
}

#[test]
fn ensembles_selectable_output_archives_and_refusals() {
    let (x, _, bin, multi) = data(600);
    let rows = x.slice(ndarray::s![..20, ..]).to_owned();
    let body = csv(&rows);
    let d = xgb_util::dmatrix(rows.view(), None).unwrap();

    // Two files are an ensemble: the mean of their predictions.
    let (b1, b2) = (
        booster("binary:logistic", &x, &bin, 1),
        booster("binary:logistic", &x, &bin, 2),
    );
    let (p1, p2) = (b1.predict(&d).unwrap(), b2.predict(&d).unwrap());
    let mean: Vec<f32> = p1.iter().zip(&p2).map(|(a, b)| (a + b) / 2.0).collect();
    let files = [
        ("model-a", b1.save_buffer(false).unwrap()),
        ("model-b", b2.save_buffer(true).unwrap()),
    ];
    let (_s, server) = serve(&files, &[]);
    assert_eq!(wait_loaded(&server), 200, "{}", server.log());
    close(
        &numbers(&post(&server, &body, None).text()),
        &mean,
        "ensemble",
    );
    // The keys chosen per request, through the header SageMaker forwards.
    let choose = |attributes: &str| {
        let headers = [
            ("Content-Type", "text/csv"),
            ("Accept", "application/json"),
            ("X-Amzn-SageMaker-Custom-Attributes", attributes),
        ];
        server.request("POST", "/invocations", &headers, body.as_bytes())
    };
    let r = choose("trace=abc; output=predicted_label,probability");
    assert_eq!(r.status, 200, "{}", r.text());
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let keys: Vec<_> = json["predictions"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["predicted_label", "probability"]);
    let r = choose("output=predicted_score");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text()
            .contains("'predicted_score' does not apply to objective binary:logistic"),
        "{}",
        r.text()
    );
    assert_eq!(choose("output=nonsense").status, 400);
    let r = post(&server, &body, Some("application/x-recordio-protobuf"));
    assert_eq!(r.status, 406, "without selected keys: {}", r.text());
    assert!(r.text().contains("output keys selected"), "{}", r.text());
    let (_s, server) = serve(&files, &[("SAGEMAKER_INFERENCE_ENSEMBLE", "false")]);
    wait_loaded(&server);
    close(
        &numbers(&post(&server, &body, None).text()),
        &p1,
        "first only",
    );

    // Selectable output, as the built-in's SAGEMAKER_INFERENCE_OUTPUT.
    let (_s, server) = serve(
        &files[..1],
        &[(
            "SAGEMAKER_INFERENCE_OUTPUT",
            "predicted_label, probability,probabilities",
        )],
    );
    wait_loaded(&server);
    let r = post(&server, &body, Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let first = &json["predictions"][0];
    let p = first["probability"].as_f64().unwrap() as f32;
    assert!((p - p1[0]).abs() < 1e-6);
    assert_eq!(first["predicted_label"], u8::from(p1[0] > 0.5));
    assert_eq!(first["probabilities"].as_array().unwrap().len(), 2);
    let r = post(&server, &body, Some("text/csv"));
    let line = r.text().lines().next().unwrap().to_owned();
    assert!(line.contains(",\"["), "lists quoted in CSV: {line}");
    assert_eq!(
        r.text().lines().count(),
        20,
        "one line per record with selected keys"
    );
    let r = post(&server, &body, Some("application/jsonlines"));
    assert_eq!(r.text().lines().count(), 20);
    // RecordIO-protobuf answers: one Record per record, the keys in its label map.
    let r = post(&server, &body, Some("application/x-recordio-protobuf"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/x-recordio-protobuf")
    );
    let records = common::data::recordio::split(&r.body).unwrap();
    assert_eq!(records.len(), 20);
    let labels = common::data::recordio::labels(&records[0]).unwrap();
    let names: Vec<_> = labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["predicted_label", "probability", "probabilities"]);
    assert!((labels[1].1[0] - p1[0]).abs() < 1e-6);
    assert_eq!(labels[2].1.len(), 2);

    let softprob = booster("multi:softprob", &x, &multi, 1);
    let (_s, server) = serve(
        &[("xgboost-model", softprob.save_buffer(true).unwrap())],
        &[(
            "SAGEMAKER_INFERENCE_OUTPUT",
            "predicted_label,labels,raw_scores",
        )],
    );
    wait_loaded(&server);
    let json: serde_json::Value =
        serde_json::from_slice(&post(&server, &body, Some("application/json")).body).unwrap();
    assert_eq!(
        json["predictions"][0]["labels"],
        serde_json::json!([0, 1, 2])
    );
    assert_eq!(
        json["predictions"][0]["raw_scores"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A key the objective does not have: refused at load, with the reason in the log.
    let reg = booster("reg:squarederror", &x, &bin, 1);
    let (_s, server) = serve(
        &[("xgboost-model", reg.save_buffer(false).unwrap())],
        &[("SAGEMAKER_INFERENCE_OUTPUT", "probability")],
    );
    assert_eq!(wait_loaded(&server), 500);
    assert!(
        server.log().contains(
            "'probability' does not apply to objective reg:squarederror (it takes predicted_score, contributions)"
        ),
        "{}",
        server.log()
    );

    // The built-in's model.tar.gz, holding xgboost-model.
    let s = Sandbox::new();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("xgboost-model"),
        b1.save_buffer(false).unwrap(),
    )
    .unwrap();
    let dir = s.opt_ml.model_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(dir.join("model.tar.gz"))
        .arg("-C")
        .arg(src.path())
        .arg("xgboost-model")
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::ready(&s.opt_ml, &[]);
    close(
        &numbers(&post(&server, &body, None).text()),
        &p1,
        "model.tar.gz",
    );
    // One value too few or too many per record: refused (the built-in accepts one too few).
    let short: String = csv(&rows.slice(ndarray::s![.., ..FEATURES - 1]).to_owned());
    let r = post(&server, &short, None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("expected 4 values, found 3"),
        "{}",
        r.text()
    );

    // A file that is no XGBoost model this build reads: named in the log.
    let (_s, server) = serve(&[("xgboost-model", b"\x00\x01legacy".to_vec())], &[]);
    assert_eq!(wait_loaded(&server), 500);
    assert!(
        server
            .log()
            .contains("xgboost-model is not an XGBoost model this build reads"),
        "{}",
        server.log()
    );
}

/// Python XGBoost 1.7.6 (scripts/xgboost1-venv.sh).
fn xgboost1_python() -> Option<String> {
    e2e::provisioned(
        "XGBOOST1_PYTHON",
        "Python XGBoost 1.7.6 with scripts/xgboost1-venv.sh",
    )
}

/// The older built-in images' artifacts: XGBoost 1.x binary models, pickles of 1.7 (a UBJSON
/// snapshot inside) and of 0.90's kind (the binary format inside, pickle protocol 2), for six
/// objectives and a forest, answered as XGBoost 1.7.6 itself predicts them (pickles with the
/// `best_ntree_limit` the built-in algorithm predicted with).
#[test]
fn xgboost_1x_binary_models_and_pickles_answer_as_xgboost_1_7_predicts() {
    let Some(python) = xgboost1_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/xgboost1/write_models.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", e2e::text(&out.stderr));
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("want.json")).unwrap()).unwrap();
    let body = std::fs::read_to_string(work.path().join("rows.csv")).unwrap();
    let flat = |v: &serde_json::Value| -> Vec<f32> {
        let mut out = Vec::new();
        for x in v.as_array().unwrap() {
            match x.as_array() {
                Some(inner) => out.extend(inner.iter().map(|y| y.as_f64().unwrap() as f32)),
                None => out.push(x.as_f64().unwrap() as f32),
            }
        }
        out
    };
    for name in [
        "binary",
        "softprob",
        "softmax",
        "regression",
        "poisson",
        "forest",
    ] {
        for (file, predicted) in [
            (format!("{name}.bin"), "file"),
            (format!("{name}.pkl"), "pickle"),
            (format!("{name}.old.pkl"), "pickle"),
        ] {
            let bytes = std::fs::read(work.path().join(&file)).unwrap();
            let (_s, server) = serve(&[("xgboost-model", bytes)], &[]);
            assert_eq!(wait_loaded(&server), 200, "{file}: {}", server.log());
            let r = post(&server, &body, None);
            assert_eq!(r.status, 200, "{file}: {}", r.text());
            close(&numbers(&r.text()), &flat(&want[name][predicted]), &file);
        }
    }
    // A binary file as XGBoost before 1.0 wrote it: the base score on the margin scale
    // (logit(0.5) = 0 for binary:logistic) and version 0 in the header: the same answers.
    let mut old = std::fs::read(work.path().join("binary.bin")).unwrap();
    assert_eq!(&old[..4], b"binf");
    old[4..8].copy_from_slice(&0f32.to_le_bytes());
    old[24..28].copy_from_slice(&0u32.to_le_bytes());
    let (_s, server) = serve(&[("xgboost-model", old[4..].to_vec())], &[]);
    assert_eq!(wait_loaded(&server), 200, "{}", server.log());
    close(
        &numbers(&post(&server, &body, None).text()),
        &flat(&want["binary"]["file"]),
        "a header-less XGBoost 0.x binary file",
    );
    // Corrupt copies (bytes changed, cut short) are read or refused, never a crash.
    let mut state = 11u64;
    for file in ["softprob.bin", "binary.pkl", "forest.old.pkl"] {
        let good = std::fs::read(work.path().join(file)).unwrap();
        for _ in 0..300 {
            let mut bad = good.clone();
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let at = (state >> 33) as usize % bad.len();
            if state.is_multiple_of(5) {
                bad.truncate(at);
            } else {
                bad[at] ^= (state >> 20) as u8 | 1;
            }
            let read = common::models::legacy::read(&bad);
            if let Ok(trees) = read.and_then(|(model, limit)| {
                let mut trees = model.compile()?;
                trees.keep_first(limit);
                Ok(trees)
            }) {
                let x = ndarray::Array2::<f32>::zeros((2, trees.n_features));
                let _ = trees.predict(x.view());
            }
        }
    }
    // Early stopping: the pickle predicts with fewer trees than the file holds.
    assert!(
        want["regression"]["best_ntree_limit"].as_u64()
            < want["regression"]["trees_grown"].as_u64()
    );
}
