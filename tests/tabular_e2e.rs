//! Generic tabular training (`model_kind=tabular`) on the real public datasets, and serving it.

use common::artifact::Manifest;
use common::models::tabular::TabularModel;
use e2e::{text, Sandbox, Server};
use std::path::Path;
use std::sync::OnceLock;

/// A gzipped file of the repository's `datasets/`, as stored (training reads `.gz` directly).
fn dataset(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The same, uncompressed.
fn dataset_text(name: &str) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&dataset(name)[..]),
        &mut text,
    )
    .unwrap();
    text
}

fn json(s: &Sandbox, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.opt_ml.output_data_dir().join(name)).unwrap()).unwrap()
}

/// The served model of a trained sandbox, with its manifest.
fn served_model(s: &Sandbox) -> (Manifest, TabularModel) {
    let dir = s.opt_ml.model_dir();
    let m = Manifest::load(&dir).unwrap();
    let model = TabularModel::from_bytes(&m.read_payload(&dir, &m.payloads[0]).unwrap()).unwrap();
    (m, model)
}

/// One value per line of a CSV answer to a CSV `body` (regression scores).
fn csv_scores(server: &Server, body: &str) -> Vec<f32> {
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv"), ("Accept", "text/csv")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().lines().map(|l| l.parse().unwrap()).collect()
}

fn train(s: &Sandbox) -> String {
    let out = s.run_train();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn agaricus_matches_xgboosts_own_demo_exactly() {
    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        r#"{"model_kind": "tabular", "objective": "binary:logistic", "num_round": "2",
            "max_depth": "2", "eta": "1", "candidates": "xgboost"}"#,
    );
    // XGBoost's demo watches the test file; it is the validation channel here.
    s.data_file(
        "train",
        "agaricus.txt.train.gz",
        &dataset("agaricus.txt.train.gz"),
    );
    s.data_file(
        "validation",
        "agaricus.txt.test.gz",
        &dataset("agaricus.txt.test.gz"),
    );
    let stdout = train(&s);
    // The demo's numbers (Python xgboost 3.2.0 prints eval-logloss 0.13776 after round 1).
    assert!(
        stdout.contains("[1]\ttrain-error:0.02226\ttrain-logloss:0.13654\tvalidation-error:0.02173\tvalidation-logloss:0.13776"),
        "{stdout}"
    );
    let c = json(&s, "model_comparison.json");
    let error = c["candidates"]["xgboost"]["validation"]["error"]
        .as_f64()
        .unwrap();
    assert_eq!(
        (error * 1611.0).round(),
        35.0,
        "35 of 1611 test rows wrong, error {error}"
    );
    assert!((error - 0.02173).abs() < 5e-6);
}

/// All four candidates on California housing (target first, no header), shared by the tests.
fn housing() -> &'static (Sandbox, String) {
    static TRAINED: OnceLock<(Sandbox, String)> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "tabular", "num_round": "100", "max_depth": "5", "eta": "0.2",
                "subsample": "0.8", "colsample_bytree": "0.8", "rf_num_trees": "30"}"#,
        );
        s.data_file(
            "train",
            "housing.csv.gz",
            &dataset("california_housing_targetfirst.csv.gz"),
        );
        let stdout = train(&s);
        (s, stdout)
    })
}

#[test]
fn housing_comparison_picks_by_rmse_only_and_reports_every_candidate() {
    let (s, stdout) = housing();
    let c = json(s, "model_comparison.json");
    assert_eq!(c["criterion"]["metric"], "rmse");
    assert_eq!(c["criterion"]["split"], "validation");
    let rmse = |name: &str| {
        c["candidates"][name]["validation"]["rmse"]
            .as_f64()
            .unwrap()
    };
    let names = ["xgboost", "random_forest", "linear", "knn"];
    let best = names
        .iter()
        .min_by(|a, b| rmse(a).total_cmp(&rmse(b)))
        .unwrap();
    assert_eq!(c["best_model"], *best);
    assert_eq!(c["served_model"], *best);
    for name in names {
        for key in ["rmse", "mae", "r2"] {
            assert!(
                c["candidates"][name]["test"][key].as_f64().is_some(),
                "{name} {key}"
            );
        }
        assert!(stdout.contains(&format!("metric: validation:{name}:rmse=")));
    }
    // The built-in algorithm's per-round lines, for the built-in metric definitions.
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("[99]\ttrain-rmse:") && l.contains("\tvalidation-rmse:")));
    let log = stdout.replace('\t', "#011");
    let checked =
        e2e::check_readme_metric_regexes("### Generic tabular (`model_kind=tabular`)", &log);
    assert!(
        checked >= 6,
        "only {checked} tabular metric rows found in the README"
    );
    // The same document is in the artifact and in evaluation.json.
    let m = Manifest::load(&s.opt_ml.model_dir()).unwrap();
    assert_eq!(m.model_kind, "tabular");
    assert_eq!(m.metrics["best_model"], c["best_model"]);
    assert_eq!(json(s, "evaluation.json"), c);
    assert_eq!(m.feature_names.len(), 8);
    // Every candidate's true cost, and the second metric that would break a tie.
    assert_eq!(c["criterion"]["tie_break"], "mae");
    assert!(c["candidates"]["knn"]["score_seconds"].as_f64().is_some());
}

/// Tab- and semicolon-separated files (found from their first line) read as the same rows in CSV.
#[test]
fn tab_and_semicolon_separated_files_read_as_csv() {
    let rows: String = dataset_text("california_housing_targetfirst.csv.gz")
        .lines()
        .take(1500)
        .map(|l| format!("{l}\n"))
        .collect();
    let mut comparisons = Vec::new();
    for separator in [",", "\t", ";"] {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "tabular", "candidates": "xgboost,linear", "num_round": "20"}"#,
        );
        s.data_file("train", "part-0", rows.replace(',', separator).as_bytes());
        train(&s);
        let c = json(&s, "model_comparison.json");
        comparisons.push(c["candidates"]["xgboost"]["validation"].clone());
    }
    assert_eq!(comparisons[0], comparisons[1]);
    assert_eq!(comparisons[0], comparisons[2]);
}

#[test]
fn served_predictions_equal_the_trained_model_and_missing_values_are_accepted() {
    let (s, _) = housing();
    let server = Server::ready(&s.opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    let all = dataset_text("california_housing_targetfirst.csv.gz");
    let mut body: String = all
        .lines()
        .take(500)
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect();
    body.push_str(",41,,1.02,322,2.55,37.88,-122.23\n");
    let served = csv_scores(&server, &body);
    assert_eq!(served.len(), 501);
    let (_, model) = served_model(s);
    let rows: Vec<f32> = body
        .lines()
        .flat_map(|l| {
            l.split(',')
                .map(|f| f.parse().unwrap_or(f32::NAN))
                .collect::<Vec<_>>()
        })
        .collect();
    let x = ndarray::Array2::from_shape_vec((501, 8), rows).unwrap();
    let want = model.predict(x.view());
    for (i, v) in served.iter().enumerate() {
        assert_eq!(*v, want[[i, 0]], "row {i}");
    }
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "application/json")],
        br#"{"instances": [[8.3, null, 6.9, 1.0, 322, 2.5, 37.8, -122.2]]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Batch mode writes JSON one record per line.
    assert!(r.text().starts_with("{\"score\":"), "{}", r.text());
}

/// What the SageMaker Python SDK's `RecordSerializer` (a predictor's protobuf serializer) sends
/// for the rows of a CSV sample payload.
fn sdk_recordio(python: &str, csv: &str) -> Vec<u8> {
    // An empty CSV field becomes NaN, which the serializer writes as is: a missing value.
    let script = "import sys, numpy as np\n\
                  from sagemaker.serializers import RecordSerializer\n\
                  rows = np.genfromtxt(sys.argv[1], delimiter=',', ndmin=2)\n\
                  open(sys.argv[2], 'wb').write(RecordSerializer().serialize(rows).getvalue())\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-payloads/").to_owned() + csv;
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new(python)
        .args(["-c", script, &path])
        .arg(out_file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        e2e::text(&out.stdout),
        e2e::text(&out.stderr)
    );
    std::fs::read(out_file.path()).unwrap()
}

#[test]
fn recordio_protobuf_from_the_sagemaker_sdk_answers_as_csv_does() {
    let Some(python) = e2e::sdk_python() else {
        return;
    };
    let (s, _) = housing();
    let server = Server::ready(&s.opt_ml, &[]);
    let body = sdk_recordio(&python, "housing-batch.csv");
    let answer = |body: &[u8], content_type: &str| {
        let headers = [("Content-Type", content_type), ("Accept", "text/csv")];
        server.request("POST", "/invocations", &headers, body)
    };
    let r = answer(&body, "application/x-recordio-protobuf");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.body,
        answer(&e2e::sample_payload("housing-batch.csv"), "text/csv").body
    );
    let r = answer(&body[..body.len() - 3], "application/x-recordio-protobuf");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("RecordIO"), "{}", r.text());
}

#[test]
fn every_housing_sample_payload_and_output_format() {
    let (s, _) = housing();
    let server = Server::ready(&s.opt_ml, &[]);
    for (file, content_type, records) in [
        ("housing-single.csv", "text/csv", 1),
        ("housing-batch.csv", "text/csv", 5),
        ("housing-instances.json", "application/json", 3),
        ("housing-batch.jsonl", "application/jsonlines", 5),
        ("housing-batch.libsvm", "text/libsvm", 5),
    ] {
        let body = e2e::sample_payload(file);
        for (accept, lines) in [
            ("text/csv", records),
            ("application/jsonlines", records),
            ("application/json", 1),
        ] {
            let r = server.request(
                "POST",
                "/invocations",
                &[("Content-Type", content_type), ("Accept", accept)],
                &body,
            );
            assert_eq!(r.status, 200, "{file} {accept}: {}", r.text());
            assert_eq!(r.text().lines().count(), lines, "{file} {accept}");
        }
    }
    // The same records as CSV and as libsvm get the same answers.
    let answer = |file: &str, content_type: &str| {
        let body = e2e::sample_payload(file);
        let headers = [("Content-Type", content_type), ("Accept", "text/csv")];
        server.request("POST", "/invocations", &headers, &body).body
    };
    assert_eq!(
        answer("housing-batch.libsvm", "text/x-libsvm"),
        answer("housing-batch.csv", "text/csv")
    );
}

#[test]
fn header_csv_weights_json_lines_and_multiclass_with_the_tuning_metric() {
    // Three classes from a noisy linear score; every input layout carries the same rows.
    let mut rows = Vec::new();
    for i in 0..900u32 {
        let a = (i * 37 % 101) as f32 / 10.0;
        let b = (i * 53 % 97) as f32 / 10.0;
        let class = ((a + b) / 7.0).floor().min(2.0);
        rows.push((a, b, class));
    }
    let header: String = std::iter::once("a,weight,species,b\n".to_owned())
        .chain(rows.iter().map(|(a, b, c)| format!("{a},1,{c},{b}\n")))
        .collect();
    let jsonl: String = rows
        .iter()
        .map(|(a, b, c)| format!("{{\"label\": {c}, \"weight\": 1, \"features\": [{a}, {b}]}}\n"))
        .collect();
    for (file, body) in [("rows.csv", header), ("rows.jsonl", jsonl)] {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "tabular", "objective": "multi:softprob", "num_class": "3",
                "label_column": "species", "csv_weights": "true", "candidates": "xgboost,linear",
                "_tuning_objective_metric": "validation:merror"}"#,
        );
        s.data_file("train", file, body.as_bytes());
        train(&s);
        let c = json(&s, "model_comparison.json");
        assert_eq!(c["criterion"]["metric"], "merror", "{file}");
        assert_eq!(c["task"], "multiclass");
        let merror = c["candidates"]["xgboost"]["validation"]["merror"]
            .as_f64()
            .unwrap();
        assert!(merror < 0.1, "{file}: merror {merror}");
        let server = Server::ready(&s.opt_ml, &[]);
        let r = server.request(
            "POST",
            "/invocations",
            &[("Content-Type", "text/csv")],
            b"1.0,2.0\n9.0,9.0\n",
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["predictions"][0]["predicted_label"], 0, "{}", r.text());
        assert_eq!(v["predictions"][1]["predicted_label"], 2);
        assert_eq!(v["predictions"][0]["score"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn bad_tabular_input_fails_with_the_line_and_keeps_the_previous_model() {
    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        r#"{"model_kind": "tabular", "candidates": "linear"}"#,
    );
    s.data_file(
        "train",
        "a.csv",
        b"1,2,3\n2,3,4\n3,4,6\n4,5,9\n5,1,1\n6,2,2\n7,3,3\n8,4,4\n9,5,5\n10,6,6\n",
    );
    train(&s);
    let before = std::fs::read(s.opt_ml.model_dir().join("manifest.json")).unwrap();
    // A numeric column with a stray text value is a data error, not a categorical column.
    s.data_file("train", "b.csv", b"1,2,3\n2,oops,4\n");
    assert!(!s.run_train().status.success());
    let reason = s.failure_reason().unwrap();
    assert!(
        reason.contains("channel 'train': 1 column(s) cannot be read: column 'f0' holds 1 text value(s) among 11 numbers, first \"oops\" (b.csv line 2)"),
        "{reason}"
    );
    assert_eq!(
        std::fs::read(s.opt_ml.model_dir().join("manifest.json")).unwrap(),
        before
    );

    let binary = Sandbox::new();
    binary.config(
        "hyperparameters.json",
        r#"{"model_kind": "tabular", "objective": "binary:logistic"}"#,
    );
    binary.data_file("train", "a.csv", b"0,1\n2,3\n");
    assert!(!binary.run_train().status.success());
    assert!(binary
        .failure_reason()
        .unwrap()
        .contains("label 2 is not 0 or 1"));

    // Every channel's labels are checked, the validation channel's too (a class past
    // num_class indexed past the confusion matrix: a panic, reported as an internal error).
    let validation = Sandbox::new();
    validation.config(
        "hyperparameters.json",
        r#"{"model_kind": "tabular", "objective": "multi:softprob", "num_class": "3",
            "candidates": "random_forest"}"#,
    );
    validation.data_file("train", "a.csv", b"0,1\n1,3\n2,5\n0,1\n1,2\n2,6\n");
    validation.data_file("validation", "v.csv", b"1,3\n3,1\n");
    assert!(!validation.run_train().status.success());
    let reason = validation.failure_reason().unwrap();
    assert!(
        reason.contains("validation channel: row 2: label 3 is not a class index below num_class"),
        "{reason}"
    );
}

/// `rows` of `price = 3a - 2b + c/2` with a header in `order` (a permutation of the columns).
fn linear_csv(rows: usize, seed: u64, order: &[&str]) -> String {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut out = order.join(",") + "\n";
    for _ in 0..rows {
        let (a, b, c) = (next() * 10.0, next() * 10.0, next() * 10.0);
        let price = 3.0 * a - 2.0 * b + c / 2.0 + next();
        let value = |name: &str| match name {
            "a" => a,
            "b" => b,
            "c" => c,
            _ => price,
        };
        let line: Vec<String> = order.iter().map(|n| format!("{:.4}", value(n))).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[test]
fn header_columns_of_validation_and_test_are_matched_by_name() {
    // A linear model's job with a header train channel in the order price, a, b, c.
    let job = || {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            r#"{"model_kind": "tabular", "label_column": "price", "candidates": "linear"}"#,
        );
        s.data_file(
            "train",
            "train.csv",
            linear_csv(400, 1, &["price", "a", "b", "c"]).as_bytes(),
        );
        s
    };
    let run = |order: &[&str]| {
        let s = job();
        // A second train file with its own column order is matched by name too.
        s.data_file(
            "train",
            "train2.csv",
            linear_csv(100, 4, &["c", "b", "a", "price"]).as_bytes(),
        );
        s.data_file("validation", "v.csv", linear_csv(200, 2, order).as_bytes());
        s.data_file("test", "t.csv", linear_csv(200, 3, order).as_bytes());
        train(&s);
        let c = json(&s, "model_comparison.json");
        let rmse = |split: &str| c["candidates"]["linear"][split]["rmse"].as_f64().unwrap();
        (rmse("validation"), rmse("test"))
    };
    let same = run(&["price", "a", "b", "c"]);
    let reversed = run(&["c", "b", "a", "price"]);
    assert!(same.0 < 0.5 && same.1 < 0.5, "{same:?}");
    assert_eq!(same, reversed);

    // A channel mixing a file without a header (taken by position) and one with a reordered
    // header: only the second is reordered.
    let mixed = |order: &[&str]| {
        let s = job();
        let plain = linear_csv(100, 5, &["price", "a", "b", "c"]);
        s.data_file(
            "validation",
            "v1.csv",
            plain.split_once('\n').unwrap().1.as_bytes(),
        );
        s.data_file("validation", "v2.csv", linear_csv(100, 6, order).as_bytes());
        train(&s);
        json(&s, "model_comparison.json")["candidates"]["linear"]["validation"]["rmse"]
            .as_f64()
            .unwrap()
    };
    let in_order = mixed(&["price", "a", "b", "c"]);
    assert!(in_order < 0.5, "{in_order}");
    assert_eq!(mixed(&["c", "b", "a", "price"]), in_order);

    let s = job();
    s.data_file(
        "validation",
        "v.csv",
        linear_csv(200, 2, &["price", "a", "b", "d"]).as_bytes(),
    );
    assert!(!s.run_train().status.success());
    let reason = s.failure_reason().unwrap();
    assert!(
        reason.contains(r#"v.csv: line 1: the header's feature columns ["a", "b", "d"] are not those of the first header read (the train channel's, for validation and test) ["a", "b", "c"]"#),
        "{reason}"
    );
}

/// A tabular job on Géron's raw `housing.csv` with `hyperparameters` (JSON), trained.
fn raw_housing_job(hyperparameters: &str) -> Sandbox {
    let s = Sandbox::new();
    s.config("hyperparameters.json", hyperparameters);
    s.data_file("train", "housing.csv.gz", &dataset("housing.csv.gz"));
    train(&s);
    s
}

/// The rows of Géron's raw `housing.csv` (a header; `median_house_value` the 9th column,
/// `ocean_proximity` the 10th, text).
fn raw_housing() -> Vec<Vec<String>> {
    dataset_text("housing.csv.gz")
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// A served model's own predictions of `rows` (feature values as text, in manifest order),
/// categorical features coded by the manifest's categories (an unknown name is missing).
fn predict_text_rows(s: &Sandbox, rows: &[Vec<String>]) -> ndarray::Array2<f32> {
    let (m, model) = served_model(s);
    let n = m.feature_names.len();
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.iter()
                .zip(&m.feature_names)
                .map(|(v, name)| match m.categories.get(name) {
                    Some(names) => names
                        .iter()
                        .position(|c| c == v)
                        .map_or(f32::NAN, |c| c as f32),
                    None => v.parse().unwrap_or(f32::NAN),
                })
        })
        .collect();
    model.predict(
        ndarray::Array2::from_shape_vec((rows.len(), n), values)
            .unwrap()
            .view(),
    )
}

#[test]
fn raw_housing_csv_trains_with_its_text_column_and_serves_it_by_name() {
    let s = raw_housing_job(
        r#"{"model_kind": "tabular", "label_column": "median_house_value", "num_round": "60",
            "rf_num_trees": "30"}"#,
    );
    let c = json(&s, "model_comparison.json");
    for name in ["xgboost", "random_forest", "linear", "knn"] {
        assert!(
            c["candidates"][name]["test"]["rmse"].as_f64().is_some(),
            "{name}: {c}"
        );
    }
    let rmse = c["candidates"]["xgboost"]["validation"]["rmse"]
        .as_f64()
        .unwrap();
    assert!(rmse < 52_000.0, "xgboost validation rmse {rmse}");
    let m = Manifest::load(&s.opt_ml.model_dir()).unwrap();
    assert_eq!(m.format_version, 2);
    assert_eq!(
        m.categories["ocean_proximity"],
        ["<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"]
    );
    assert_eq!(m.feature_names.last().unwrap(), "ocean_proximity");

    // CSV rows as the file has them, the label left out: the model's own predictions.
    let rows: Vec<Vec<String>> = raw_housing()[1..301]
        .iter()
        .map(|r| [&r[..8], &r[9..]].concat())
        .collect();
    let body: String = rows.iter().map(|r| r.join(",") + "\n").collect();
    let server = Server::ready(&s.opt_ml, &[]);
    let served = csv_scores(&server, &body);
    let want = predict_text_rows(&s, &rows);
    assert_eq!(served.len(), 300);
    for (i, v) in served.iter().enumerate() {
        assert_eq!(*v, want[[i, 0]], "row {i}");
    }
    // JSON records by name; a missing value and a category training never saw are missing.
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "application/json")],
        br#"{"instances": [
            {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
             "total_bedrooms": null, "population": 322, "households": 126, "median_income": 8.3252,
             "ocean_proximity": "NEAR BAY"},
            {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
             "total_bedrooms": 129, "population": 322, "households": 126, "median_income": 8.3252,
             "ocean_proximity": "ATLANTIS"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let text_row = |bedrooms: &str, ocean: &str| -> Vec<String> {
        [
            "-122.23", "37.88", "41", "880", bedrooms, "322", "126", "8.3252", ocean,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let want = predict_text_rows(&s, &[text_row("", "NEAR BAY"), text_row("129", "")]);
    for i in 0..2 {
        assert_eq!(
            v["predictions"][i]["score"].as_f64().unwrap() as f32,
            want[[i, 0]]
        );
    }
    // The unseen category is in the log.
    let log = server.log();
    assert!(log.contains("categories training never saw"), "{log}");
    // Asked for, each answer names what training never saw: a value beyond its range, a new
    // category (CSV: one more field, the names joined by ';').
    let r = server.request(
        "POST",
        "/invocations",
        &[
            ("Content-Type", "text/csv"),
            ("Accept", "text/csv"),
            ("X-Amzn-SageMaker-Custom-Attributes", "output=out_of_range"),
        ],
        b"-122.23,37.88,41,880,129,322,126,150.0,ATLANTIS\n-122.23,37.88,41,880,,322,126,8.3,INLAND\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.text();
    let lines: Vec<&str> = answer.lines().collect();
    assert!(
        lines[0].ends_with(",median_income;ocean_proximity"),
        "{answer}"
    );
    assert!(lines[1].ends_with(','), "{answer}");
    // Contributions of the served trees (TreeSHAP, the categorical split included) sum to the
    // score, for the text column too.
    let r = server.request(
        "POST",
        "/invocations",
        &[
            ("Content-Type", "text/csv"),
            (
                "X-Amzn-SageMaker-Custom-Attributes",
                "output=contributions,out_of_range",
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    for p in v["predictions"].as_array().unwrap() {
        let phi = e2e::floats(&p["contributions"]);
        assert_eq!(phi.len(), 10);
        let score = p["score"].as_f64().unwrap();
        assert!((phi.iter().sum::<f64>() - score).abs() < 1.0, "{p}");
        assert!(p["out_of_range"].is_array());
    }
}

#[test]
fn text_labels_are_classes_answered_by_name() {
    // Multi-class: the five ocean_proximity names are the label.
    let s = raw_housing_job(
        r#"{"model_kind": "tabular", "label_column": "ocean_proximity",
            "candidates": "xgboost,linear", "num_round": "30"}"#,
    );
    let c = json(&s, "model_comparison.json");
    assert_eq!(c["task"], "multiclass");
    assert_eq!(c["criterion"]["metric"], "mlogloss");
    let m = Manifest::load(&s.opt_ml.model_dir()).unwrap();
    let names = ["<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"];
    assert_eq!(m.class_names, names);
    let rows: Vec<Vec<String>> = raw_housing()[1..401].to_vec();
    let body: String = rows.iter().map(|r| r[..9].join(",") + "\n").collect();
    let server = Server::ready(&s.opt_ml, &[]);
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let right = (0..400)
        .filter(|&i| v["predictions"][i]["predicted_label"] == rows[i][9].as_str())
        .count();
    assert!(right > 320, "{right} of 400 right");
    assert_eq!(v["predictions"][0]["score"].as_array().unwrap().len(), 5);

    // Binary with the objective given: the score is the second name's probability.
    let mut csv = "longitude,latitude,price\n".to_owned();
    for r in &raw_housing()[1..3001] {
        let price = if r[8].parse::<f64>().unwrap() > 250_000.0 {
            "expensive"
        } else {
            "cheap"
        };
        csv.push_str(&format!("{},{},{price}\n", r[0], r[1]));
    }
    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        r#"{"model_kind": "tabular", "label_column": "price", "objective": "binary:logistic",
            "candidates": "xgboost", "num_round": "30"}"#,
    );
    s.data_file("train", "prices.csv", csv.as_bytes());
    train(&s);
    let m = Manifest::load(&s.opt_ml.model_dir()).unwrap();
    assert_eq!(m.class_names, ["cheap", "expensive"]);
    let server = Server::ready(&s.opt_ml, &[]);
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv")],
        b"-122.23,37.88\n-118.0,34.0\n-121.0,39.5\n",
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    for p in v["predictions"].as_array().unwrap() {
        let expensive = p["score"].as_f64().unwrap() > 0.5;
        assert_eq!(
            p["predicted_label"],
            if expensive { "expensive" } else { "cheap" },
            "{p}"
        );
    }
    // A validation class the train channel never held is named; so is a wrong objective.
    s.data_file(
        "validation",
        "v.csv",
        b"longitude,latitude,price\n-122,37,pricey\n",
    );
    assert!(!s.run_train().status.success());
    let reason = s.failure_reason().unwrap();
    assert!(
        reason.contains(
            "the label \"pricey\" is not among the train channel's classes ('cheap', 'expensive')"
        ),
        "{reason}"
    );
}

#[test]
fn linear_and_knn_take_text_columns_one_hot_and_linear_explains_them() {
    let s = raw_housing_job(
        r#"{"model_kind": "tabular", "label_column": "median_house_value",
            "candidates": "linear,knn", "serve_model": "linear"}"#,
    );
    let c = json(&s, "model_comparison.json");
    let rmse = c["candidates"]["linear"]["validation"]["rmse"]
        .as_f64()
        .unwrap();
    assert!(
        rmse < 72_000.0,
        "linear with one-hot ocean_proximity: {rmse}"
    );
    assert!(c["candidates"]["knn"]["validation"]["rmse"]
        .as_f64()
        .is_some());
    let server = Server::ready(
        &s.opt_ml,
        &[("SAGEMAKER_INFERENCE_OUTPUT", "contributions")],
    );
    let r = server.request(
        "POST",
        "/invocations",
        &[("Content-Type", "text/csv")],
        b"-122.23,37.88,41,880,129,322,126,8.3,NEAR BAY\n-122.23,37.88,41,880,129,322,126,8.3,INLAND\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let phi = |i: usize| e2e::floats(&v["predictions"][i]["contributions"]);
    for i in 0..2 {
        let score = v["predictions"][i]["score"].as_f64().unwrap();
        assert!(
            (phi(i).iter().sum::<f64>() - score).abs() < 1.0,
            "{}",
            r.text()
        );
    }
    // Only the text column differs, and so only its contribution.
    let (a, b) = (phi(0), phi(1));
    assert!((0..8).all(|k| (a[k] - b[k]).abs() < 1e-6), "{a:?} {b:?}");
    assert!((a[8] - b[8]).abs() > 1.0);
}

fn housing_job(hyperparameters: &str, checkpoints: Option<&Path>) -> Sandbox {
    let s = Sandbox::new();
    s.config("hyperparameters.json", hyperparameters);
    if let Some(dir) = checkpoints {
        s.config(
            "checkpointconfig.json",
            &format!(r#"{{"LocalPath": "{}"}}"#, dir.display()),
        );
    }
    s.data_file(
        "train",
        "housing.csv.gz",
        &dataset("california_housing_targetfirst.csv.gz"),
    );
    s
}

/// A tabular job killed (SIGKILL) during the XGBoost candidate's rounds and started again with
/// the same checkpoint directory goes on from its newest checkpoint (the linear candidate
/// fitted before it, the XGBoost rounds so far) and ends with the uninterrupted job's
/// comparison.
#[test]
fn a_killed_tabular_job_resumes_from_its_checkpoints_to_the_uninterrupted_comparison() {
    let hp = r#"{"model_kind": "tabular", "candidates": "linear,xgboost,random_forest",
                 "num_round": "300", "early_stopping_rounds": "0", "subsample": "1",
                 "colsample_bytree": "1", "rf_num_trees": "20", "nthread": "1",
                 "checkpoint_interval": "10"}"#;
    let numbers = |dir: &Path| e2e::checkpoint_numbers(dir, "tabular-checkpoint.");
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = housing_job(hp, Some(whole_dir.path()));
    train(&whole);
    // The linear candidate (1), every 10th of 300 rounds (11..=301), XGBoost done (302), the
    // forest (303).
    assert_eq!(numbers(whole_dir.path()).last(), Some(&303));
    let dir = tempfile::tempdir().unwrap();
    let killed = housing_job(hp, Some(dir.path()));
    let (newest, first) = killed.killed_and_resumed("[40]", dir.path(), "tabular-checkpoint.");
    assert!((41..302).contains(&newest), "{newest}");
    assert!(first.starts_with(&format!("[{}]", newest - 1)), "{first}");
    let (a, b) = (
        json(&whole, "evaluation.json"),
        json(&killed, "evaluation.json"),
    );
    for c in ["linear", "xgboost", "random_forest"] {
        assert_eq!(
            a["candidates"][c]["validation"], b["candidates"][c]["validation"],
            "{c}"
        );
        assert_eq!(
            a["candidates"][c]["test"], b["candidates"][c]["test"],
            "{c}"
        );
    }
    assert_eq!(a["best_model"], b["best_model"]);
}

/// A job started again on the checkpoints of a finished one fits nothing again: every candidate
/// comes back from its checkpoint, and the served tree candidate is written from there, byte for
/// byte the first run's model (a candidate read back keeps its XGBoost file to be written).
#[test]
fn a_job_started_again_on_finished_checkpoints_writes_the_same_tree_model() {
    let hp = r#"{"model_kind": "tabular", "candidates": "linear,xgboost", "num_round": "20",
                 "serve_model": "xgboost", "nthread": "1"}"#;
    let dir = tempfile::tempdir().unwrap();
    let first = housing_job(hp, Some(dir.path()));
    assert!(train(&first).contains("[19]"));
    let again = housing_job(hp, Some(dir.path()));
    let log = train(&again);
    assert!(!log.contains("[19]"), "the rounds ran again:\n{log}");
    let payload = |s: &Sandbox| {
        let (m, model) = served_model(s);
        assert_eq!(model.candidate.name(), "xgboost");
        std::fs::read(s.opt_ml.model_dir().join(&m.payloads[0].file)).unwrap()
    };
    assert_eq!(payload(&again), payload(&first));
}

/// With `save_model_on_termination`, SIGTERM during the XGBoost candidate ends the comparison
/// there: the candidates fitted so far (the XGBoost one with its rounds) are compared, the best
/// served, marked partial; the job exits 0.
#[test]
fn sigterm_with_save_model_on_termination_compares_the_candidates_fitted_so_far() {
    let s = housing_job(
        r#"{"model_kind": "tabular", "candidates": "linear,xgboost,random_forest",
            "num_round": "10000", "early_stopping_rounds": "0", "serve_model": "random_forest",
            "save_model_on_termination": "true", "nthread": "1"}"#,
        None,
    );
    let (status, _) = s.train_stopped_at("[5]");
    assert!(status.success(), "{:?}", s.failure_reason());
    let (m, model) = served_model(&s);
    let kept = m.partial.clone().expect("marked partial");
    assert!(
        kept.starts_with("xgboost ")
            && kept.ends_with(" of 10000 rounds, random_forest not fitted"),
        "{kept}"
    );
    let e = json(&s, "evaluation.json");
    assert_eq!(e["partial"], true);
    let fitted: Vec<&String> = e["candidates"].as_object().unwrap().keys().collect();
    assert_eq!(fitted, ["linear", "xgboost"]);
    // The forest, to be served, was not fitted: the best one fitted is.
    assert_eq!(e["served_model"], e["best_model"]);
    assert_eq!(model.candidate.name(), e["served_model"].as_str().unwrap());
}
