//! Every failure class of `train`: non-zero exit and a clear first line in `output/failure`.

use common::datagen::Layout;
use e2e::{fire_bytes, text, Sandbox};

/// Runs train and returns the failure file's first line, checking the exit code and that no
/// model was written.
fn fails(s: &Sandbox) -> String {
    let out = s.run_train();
    assert!(
        !out.status.success(),
        "expected failure; stderr: {}",
        text(&out.stderr)
    );
    assert!(!s.opt_ml.model_dir().join("manifest.json").exists());
    assert!(!s.opt_ml.success_file().exists());
    let reason = s.failure_reason().expect("failure file written");
    assert!(reason.len() <= 1024, "{reason}");
    reason
}

fn assert_contains(reason: &str, want: &str) {
    assert!(
        reason.contains(want),
        "failure reason {reason:?} lacks {want:?}"
    );
}

#[test]
fn missing_train_channel() {
    let s = Sandbox::new();
    assert_contains(&fails(&s), "Missing required channel: train");
}

#[test]
fn empty_channel() {
    let s = Sandbox::new();
    s.data_file("train", "_SUCCESS", b"");
    s.data_file("train", ".hidden.csv", b"1,2");
    assert_contains(&fails(&s), "Channel 'train' is empty");
}

#[test]
fn bad_hyperparameter_value_and_unknown_key() {
    let s = Sandbox::new();
    s.fire_file("train", "d.csv", 300, 1, Layout::CsvHeader);
    s.config("hyperparameters.json", r#"{"gb_eta": "fast"}"#);
    assert_contains(
        &fails(&s),
        "gb_eta: could not parse value 'fast'; allowed: a number in (0, 1]",
    );
    let s = Sandbox::new();
    s.fire_file("train", "d.csv", 300, 1, Layout::CsvHeader);
    s.config("hyperparameters.json", r#"{"rf_num_trees": "0"}"#);
    assert_contains(&fails(&s), "rf_num_trees: 0 is not in [1, 5000]");
    let s = Sandbox::new();
    s.fire_file("train", "d.csv", 300, 1, Layout::CsvHeader);
    s.config("hyperparameters.json", r#"{"num_round": "10"}"#);
    assert_contains(&fails(&s), "Extraneous hyperparameter found: num_round");
    let s = Sandbox::new();
    s.config("hyperparameters.json", r#"{"num_round": "#);
    assert_contains(&fails(&s), "hyperparameters.json is not a flat JSON object");
}

#[test]
fn wrong_features() {
    let s = Sandbox::new();
    s.data_file("train", "d.csv", b"t_mean,t_std,label\n1,2,0\n");
    assert_contains(
        &fails(&s),
        "d.csv: line 1: the header lacks feature column(s) t_max",
    );
    let s = Sandbox::new();
    s.data_file("train", "d.csv", b"0,1,2,3\n");
    assert_contains(
        &fails(&s),
        "d.csv: line 1: expected 19 columns (the label then the 18 features), found 4",
    );
    let s = Sandbox::new();
    s.data_file(
        "train",
        "d.jsonl",
        b"{\"features\": {\"t_mean\": 1}, \"label\": 0}\n",
    );
    assert_contains(&fails(&s), "d.jsonl: line 1 column");
    assert_contains(&s.failure_reason().unwrap(), "missing feature 't_std'");
}

#[test]
fn non_numeric_value_names_file_line_and_column() {
    let s = Sandbox::new();
    let mut csv = fire_bytes(50, 1, Layout::CsvLabelFirst);
    csv.extend_from_slice(b"1,hot,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18\n");
    s.data_file("train", "sub/part.csv", &csv);
    assert_contains(
        &fails(&s),
        "sub/part.csv: line 51: column 2 ('t_mean') is not a number: \"hot\"",
    );
}

#[test]
fn one_class_only() {
    let s = Sandbox::new();
    let mut csv = String::new();
    for i in 0..100 {
        csv.push_str(&format!("0{}\n", ",1.5".repeat(17) + &format!(",{i}")));
    }
    s.data_file("train", "d.csv", csv.as_bytes());
    assert_contains(
        &fails(&s),
        "holds only label 0 (100 rows); the fire detector needs examples of both 0 and 1",
    );
}

#[test]
fn unreadable_file() {
    let s = Sandbox::new();
    s.data_file("train", "d.csv.gz", b"\x1f\x8bnot really gzip");
    let reason = fails(&s);
    assert_contains(&reason, "d.csv.gz");
    let s = Sandbox::new();
    s.data_file("train", "d.json", b"{\"samples\": [{\"features\": ");
    assert_contains(&fails(&s), "d.json: line 1 column");
}

#[test]
fn pipe_mode_and_bad_content_type_are_refused_clearly() {
    let s = Sandbox::new();
    s.fire_file("train", "d.csv", 300, 1, Layout::CsvHeader);
    s.config(
        "inputdataconfig.json",
        r#"{"train": {"TrainingInputMode": "Pipe"}}"#,
    );
    assert_contains(&fails(&s), "channel 'train' uses Pipe input mode");
    let s = Sandbox::new();
    s.fire_file("train", "d.csv", 300, 1, Layout::CsvHeader);
    // RecordIO carries no feature names, so the fire model does not read it.
    s.config(
        "inputdataconfig.json",
        r#"{"train": {"ContentType": "application/x-recordio-protobuf"}}"#,
    );
    assert_contains(
        &fails(&s),
        "ContentType 'application/x-recordio-protobuf' is not supported",
    );
    // A file declared Parquet that is not one says so, naming the file.
    let s = Sandbox::new();
    s.fire_file("train", "d.csv", 300, 1, Layout::CsvHeader);
    s.config(
        "inputdataconfig.json",
        r#"{"train": {"ContentType": "application/x-parquet"}}"#,
    );
    assert_contains(&fails(&s), "d.csv: not a Parquet file this container reads");
}

#[test]
fn an_existing_failure_file_is_kept() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.opt_ml.output_dir()).unwrap();
    std::fs::write(s.opt_ml.failure_file(), "first cause\n").unwrap();
    assert_eq!(fails(&s), "first cause");
}
