//! The IOPS models end to end: generated insights -> `train` (model_kind=iops) -> `serve`.

use common::artifact::Manifest;
use common::data::{Format, RowSink};
use common::datagen::{self, iops as gen};
use common::kinds::iops::IopsModel;
use common::kinds::iops::{self, Models};
use e2e::{sample_payload, text, Sandbox, Server};
use std::sync::OnceLock;

const BOTH: Models = Models {
    classifier: true,
    regressor: true,
};

fn insights_bytes(rows: usize, seed: u64, layout: gen::IopsLayout) -> Vec<u8> {
    let all = gen::insights(&mut datagen::rng(seed), rows);
    let mut out = Vec::new();
    gen::write(&all, layout, &mut out).unwrap();
    out
}

/// Features (25 per row) and labels as `train` reads them.
fn load(bytes: &[u8], format: Format, models: Models) -> RowSink {
    let mut sink = RowSink::default();
    format
        .parse(bytes, &iops::schema(models), "insights", &mut sink)
        .unwrap();
    sink
}

fn evaluation(s: &Sandbox) -> serde_json::Value {
    let path = s.opt_ml.output_data_dir().join("evaluation.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// One model trained on the original's 10,000 insights, shared by the tests.
fn trained() -> &'static (Sandbox, String) {
    static MODEL: OnceLock<(Sandbox, String)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let s = Sandbox::new();
        s.config("hyperparameters.json", r#"{"model_kind": "iops"}"#);
        s.data_file(
            "train",
            "training-data.json",
            &insights_bytes(10_000, 1, gen::IopsLayout::Json),
        );
        let out = s.run_train();
        assert!(out.status.success(), "{}", text(&out.stderr));
        (s, text(&out.stdout))
    })
}

#[test]
fn both_models_clear_the_quality_bars_and_log_xgboost_rounds() {
    let (s, stdout) = trained();
    let e = evaluation(s);
    assert_eq!(e["rows"]["test"], 1500);
    let accuracy = e["classifier"]["test"]["accuracy"].as_f64().unwrap();
    let rmse = e["regressor"]["test"]["rmse"].as_f64().unwrap();
    assert!(accuracy >= 0.99, "test accuracy {accuracy}");
    // The generator's floor is sqrt(40) = 6.32: the score is uniform inside each class band.
    assert!((6.0..=6.6).contains(&rmse), "test RMSE {rmse}");
    let confusion = &e["classifier"]["test"]["confusion"];
    assert_eq!(confusion.as_array().unwrap().len(), 4);
    for key in ["precision", "recall", "f1"] {
        assert!(e["classifier"]["test"]["classes"][3][key]
            .as_f64()
            .is_some());
    }
    for key in ["mae", "r2"] {
        assert!(e["regressor"]["test"][key].as_f64().is_some());
    }
    // XGBoost's own per-round format, as the built-in algorithm's metric regexes expect.
    assert!(
        stdout.lines().any(|l| l.starts_with("[0]\ttrain-merror:")
            && l.contains("\ttrain-mlogloss:")
            && l.contains("\tvalidation-mlogloss:")),
        "{stdout}"
    );
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("[0]\ttrain-rmse:") && l.contains("\tvalidation-rmse:")));
    let log = stdout.replace('\t', "#011");
    let checked =
        e2e::check_readme_metric_regexes("### IOPS metrics for hyperparameter tuning", &log);
    assert!(
        checked >= 10,
        "only {checked} IOPS metric rows found in the README"
    );

    let m = Manifest::load(&s.opt_ml.model_dir()).unwrap();
    assert_eq!(m.model_kind, "iops");
    assert_eq!(m.feature_names, iops::FEATURE_NAMES);
    let formats: Vec<(&str, &str)> = m
        .payloads
        .iter()
        .map(|p| (p.name.as_str(), p.format.as_str()))
        .collect();
    for want in [
        ("risk_classifier", "xgboost-ubj"),
        ("risk_classifier", "compiled-trees"),
        ("performance_regressor", "xgboost-ubj"),
        ("performance_regressor", "compiled-trees"),
    ] {
        assert!(formats.contains(&want), "{formats:?}");
    }
}

#[test]
fn served_predictions_equal_the_trained_models() {
    let (s, _) = trained();
    let server = Server::ready(&s.opt_ml, &[]);
    let body = insights_bytes(300, 77, gen::IopsLayout::JsonLines);
    let r = server.request(
        "POST",
        "/invocations",
        &[
            ("Content-Type", "application/jsonlines"),
            ("Accept", "application/jsonlines"),
        ],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = load(&body, Format::Json, BOTH);
    let x = ndarray::Array2::from_shape_vec((rows.len(), 25), rows.features).unwrap();
    let dir = s.opt_ml.model_dir();
    let model = IopsModel::load(&dir, &Manifest::load(&dir).unwrap()).unwrap();
    let want = model.predict(x.view());
    let probs = want.probabilities.as_ref().unwrap();
    let scores = want.scores.as_ref().unwrap();
    let lines: Vec<serde_json::Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 300);
    let mut correct = 0;
    for (i, got) in lines.iter().enumerate() {
        for (k, level) in iops::RISK_LEVELS.iter().enumerate() {
            // Numbers are written as the shortest text that reads back as the same f32.
            let p = got["probabilities"][level].as_f64().unwrap() as f32;
            assert_eq!(p, probs[[i, k]], "row {i} {level}");
        }
        let score = got["performance_score"].as_f64().unwrap() as f32;
        assert_eq!(score, scores[i], "row {i} score");
        assert_eq!(got["risk_class"], want.class(i).unwrap());
        correct += usize::from(got["risk_class"].as_f64().unwrap() as f32 == rows.labels[2 * i]);
    }
    assert!(correct >= 297, "{correct} of 300 served classes are right");
}

#[test]
fn every_iops_sample_payload_and_output_format() {
    let (s, _) = trained();
    let server = Server::ready(&s.opt_ml, &[]);
    for (file, content_type, records) in [
        ("iops-insight.json", "application/json", 1),
        ("iops-features.json", "application/json", 1),
        ("iops-single.csv", "text/csv", 1),
        ("iops-batch.csv", "text/csv", 8),
        ("iops-batch.jsonl", "application/jsonlines", 8),
    ] {
        let body = sample_payload(file);
        let csv = server.request(
            "POST",
            "/invocations",
            &[("Content-Type", content_type), ("Accept", "text/csv")],
            &body,
        );
        assert_eq!(csv.status, 200, "{file}: {}", csv.text());
        let lines: Vec<String> = csv.text().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), records, "{file}");
        for line in &lines {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 7, "{line}");
            assert!(iops::RISK_LEVELS.contains(&fields[1]), "{line}");
        }
        let json = server.request(
            "POST",
            "/invocations",
            &[("Content-Type", content_type)],
            &body,
        );
        let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(
            v["predictions"].as_array().unwrap().len(),
            records,
            "{file}"
        );
    }
    // The raw insight and its 25 features (derived ones computed by the sample's author) agree.
    let ask = |file: &str| {
        let r = server.request(
            "POST",
            "/invocations",
            &[("Content-Type", "application/json")],
            &sample_payload(file),
        );
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["predictions"][0].clone()
    };
    let (raw, given) = (ask("iops-insight.json"), ask("iops-features.json"));
    assert_eq!(raw["risk_level"], "critical");
    assert_eq!(raw["risk_level"], given["risk_level"]);
    let score = |v: &serde_json::Value| v["performance_score"].as_f64().unwrap();
    assert!((score(&raw) - score(&given)).abs() < 1e-3);
    let missing = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "application/json")],
        br#"{"read_iops": 100}"#,
    );
    assert_eq!(missing.status, 400);
    assert!(
        missing.text().contains("missing feature 'write_iops'"),
        "{}",
        missing.text()
    );
}

#[test]
fn out_of_range_names_what_training_never_saw() {
    // The original's dashboard sent 150,000 IOPS to a model trained on at most 9,000.
    let (s, _) = trained();
    let m = common::artifact::Manifest::load(&s.opt_ml.model_dir()).unwrap();
    let [_, most] = m.training_ranges["read_iops"];
    assert!(most < 150_000.0, "{most}");
    let mut insight: serde_json::Value =
        serde_json::from_slice(&sample_payload("iops-insight.json")).unwrap();
    insight["read_iops"] = 150_000.into();
    insight["total_iops"] = (150_000 + 2054).into();
    let body = serde_json::to_vec(&insight).unwrap();
    let ask = |envs: &[(&str, &str)], headers: &[(&str, &str)]| {
        let server = Server::ready(&s.opt_ml, envs);
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        let r = server.request("POST", "/invocations", &all, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["predictions"][0].clone()
    };
    let flagged = ask(
        &[],
        &[("X-Amzn-SageMaker-Custom-Attributes", "output=out_of_range")],
    );
    let names: Vec<&str> = flagged["out_of_range"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"read_iops") && names.contains(&"total_iops"),
        "{flagged}"
    );
    assert!(
        flagged["risk_level"].is_string(),
        "the answer itself is kept: {flagged}"
    );
    // Contributions: the classifier's four class margins then the score, 26 values each.
    let explained = ask(
        &[],
        &[("X-Amzn-SageMaker-Custom-Attributes", "output=contributions")],
    );
    let phi = e2e::floats(&explained["contributions"]);
    assert_eq!(phi.len(), 5 * 26, "{explained}");
    let score = explained["performance_score"].as_f64().unwrap();
    let unclipped: f64 = phi[4 * 26..].iter().sum();
    assert!(
        (unclipped.clamp(0.0, 100.0) - score).abs() < 1e-2,
        "{unclipped} vs {score}"
    );
    // The endpoint's default, and nothing extra when neither asks.
    let by_default = ask(&[("SAGEMAKER_INFERENCE_OUTPUT", "out_of_range")], &[]);
    assert_eq!(by_default["out_of_range"], flagged["out_of_range"]);
    assert!(ask(&[], &[]).get("out_of_range").is_none());
}

#[test]
fn batch_mode_answers_one_line_per_insight() {
    let (s, _) = trained();
    let server = Server::ready(&s.opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    let body = insights_bytes(5000, 8, gen::IopsLayout::JsonLines);
    for accept in ["application/json", "text/csv"] {
        let r = server.request(
            "POST",
            "/invocations",
            &[
                ("Content-Type", "application/jsonlines"),
                ("Accept", accept),
            ],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text().lines().count(), 5000, "{accept}");
        assert!(r.text().ends_with('\n'));
    }
    let mut bad = body.clone();
    bad.extend_from_slice(b"{\"read_iops\": \"fast\"}\n");
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "application/jsonlines")],
        &bad,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("record 5001 (line 5001)"), "{}", r.text());
}

#[test]
fn headerless_csv_trains_one_model_and_names_the_fix_otherwise() {
    let rows = load(
        &insights_bytes(3000, 5, gen::IopsLayout::Csv),
        Format::Csv,
        BOTH,
    );
    // SageMaker's convention: the class in column 0, then the 25 features, no header.
    let mut csv = String::new();
    for (i, features) in rows.features.chunks(25).enumerate() {
        let values: Vec<String> = features.iter().map(f32::to_string).collect();
        csv.push_str(&format!("{},{}\n", rows.labels[2 * i], values.join(",")));
    }
    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        r#"{"model_kind": "iops", "objective": "multi:softmax", "num_class": "4"}"#,
    );
    s.data_file("train", "train.csv", csv.as_bytes());
    let out = s.run_train();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e = evaluation(&s);
    assert!(e["regressor"].is_null());
    assert!(e["classifier"]["test"]["accuracy"].as_f64().unwrap() >= 0.99);
    let server = Server::ready(&s.opt_ml, &[]);
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv"), ("Accept", "text/csv")],
        &sample_payload("iops-single.csv"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text().trim().split(',').count(), 6, "{}", r.text());
    drop(server);

    let both = Sandbox::new();
    both.config("hyperparameters.json", r#"{"model_kind": "iops"}"#);
    both.data_file("train", "train.csv", csv.as_bytes());
    let out = both.run_train();
    assert!(!out.status.success());
    let reason = both.failure_reason().unwrap();
    assert!(
        reason.contains("a headerless CSV holds one label"),
        "{reason}"
    );
    assert!(!both.opt_ml.model_dir().join("manifest.json").exists());
}

/// An IOPS job killed (SIGKILL) while fitting the regressor and started again with the same
/// checkpoint directory goes on from its newest checkpoint (the classifier whole, the
/// regressor's rounds so far) and ends with the uninterrupted job's models (no row or column
/// sampling: XGBoost does not keep its samplers' random state).
#[test]
fn a_killed_iops_job_resumes_from_its_checkpoints_to_the_uninterrupted_models() {
    let job = |dir: &std::path::Path| {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "iops", "subsample": "1", "colsample_bytree": "1", "nthread": "1",
                "early_stopping_rounds": "0", "num_round": "400",
                "checkpoint_interval": "20"}"#,
        )
        .config(
            "checkpointconfig.json",
            &format!(r#"{{"LocalPath": "{}"}}"#, dir.display()),
        );
        s.data_file(
            "train",
            "insights.json",
            &insights_bytes(4_000, 2, gen::IopsLayout::Json),
        );
        s
    };
    let numbers = |dir: &std::path::Path| e2e::checkpoint_numbers(dir, "iops-checkpoint.");
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = job(whole_dir.path());
    let out = whole.run_train();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        numbers(whole_dir.path()).last(),
        Some(&800),
        "400 rounds each"
    );

    let dir = tempfile::tempdir().unwrap();
    let killed = job(dir.path());
    let (newest, first) =
        killed.killed_and_resumed("[20]\ttrain-rmse", dir.path(), "iops-checkpoint.");
    assert!((420..800).contains(&newest), "{newest}");
    assert!(
        first.starts_with(&format!("[{}]\ttrain-rmse", newest - 400)),
        "{first}"
    );
    let (a, b) = (evaluation(&whole), evaluation(&killed));
    assert_eq!(a["classifier"]["test"], b["classifier"]["test"]);
    assert_eq!(a["regressor"]["test"], b["regressor"]["test"]);
}

/// With `save_model_on_termination`, SIGTERM while the classifier is fitted saves its rounds so
/// far (the regressor is not begun), marked partial; the job exits 0 and the model serves.
#[test]
fn sigterm_with_save_model_on_termination_saves_the_rounds_so_far() {
    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        r#"{"model_kind": "iops", "num_round": "10000", "early_stopping_rounds": "0",
            "save_model_on_termination": "true", "nthread": "1"}"#,
    );
    s.data_file(
        "train",
        "insights.json",
        &insights_bytes(3_000, 3, gen::IopsLayout::Json),
    );
    let (status, _) = s.train_stopped_at("[3]\ttrain-merror");
    assert!(status.success(), "{:?}", s.failure_reason());
    let dir = s.opt_ml.model_dir();
    let m = Manifest::load(&dir).unwrap();
    let kept = m.partial.clone().expect("marked partial");
    assert!(
        kept.starts_with("risk_classifier ")
            && kept.ends_with(" of 10000 rounds, performance_regressor not fitted"),
        "{kept}"
    );
    let e = evaluation(&s);
    assert_eq!(e["partial"], true);
    assert!(e["regressor"].is_null() && e["classifier"]["test"]["accuracy"].is_number());
    IopsModel::load(&dir, &m).expect("the partial model loads");
    let server = Server::ready(&s.opt_ml, &[]);
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "application/json")],
        &sample_payload("iops-insight.json"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("risk_class"), "{}", r.text());
    assert!(
        server.log().contains("saved on SIGTERM"),
        "{}",
        server.log()
    );
}
