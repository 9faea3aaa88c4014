//! `model_kind=xgboost`: training with the built-in XGBoost algorithm's hyperparameters, checked
//! against XGBoost itself (the same library Python XGBoost 3.x is built on) trained directly with
//! the same parameters, and served by the real `serve`.

use crate::xgboost_e2e::{close, csv, data, numbers, post, wait_loaded};
use common::models::xgboost::{self as xgb_util, XgbParams};
use e2e::{Sandbox, Server};
use ndarray::{s, Array1, Array2};

/// `label,f0,f1,...` rows, as the built-in reads CSV (no header, label first).
fn labelled_csv(x: &Array2<f32>, y: &Array1<f32>) -> String {
    csv(x)
        .lines()
        .zip(y)
        .map(|(row, label)| format!("{label},{row}\n"))
        .collect()
}

/// `label qid:q i:v ...` rows, four rows per query.
fn ranking_libsvm(x: &Array2<f32>, y: &Array1<f32>) -> String {
    x.rows()
        .into_iter()
        .zip(y)
        .enumerate()
        .map(|(r, (row, label))| {
            let entries: Vec<String> = row
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(i, v)| format!("{i}:{v}"))
                .collect();
            format!("{label} qid:{} {}\n", r / 4, entries.join(" "))
        })
        .collect()
}

fn job(
    hyperparameters: &str,
    train: &str,
    validation: Option<&str>,
) -> (Sandbox, std::process::Output) {
    let s = Sandbox::new();
    s.config("hyperparameters.json", hyperparameters);
    s.data_file("train", "part-0", train.as_bytes());
    if let Some(v) = validation {
        s.data_file("validation", "part-0", v.as_bytes());
    }
    let out = s.run_train();
    (s, out)
}

fn evaluation(s: &Sandbox) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(s.opt_ml.output_data_dir().join("evaluation.json")).unwrap(),
    )
    .unwrap()
}

fn saved_booster(s: &Sandbox) -> xgb::Booster {
    xgb::Booster::load_buffer(&std::fs::read(s.opt_ml.model_dir().join("xgboost-model")).unwrap())
        .unwrap()
}

#[test]
fn builtin_training_equals_xgboost_trained_directly_and_serves_its_model() {
    let (x, reg, _, _) = data(800);
    let (train_x, train_y) = (
        x.slice(s![..600, ..]).to_owned(),
        reg.slice(s![..600]).to_owned(),
    );
    let (valid_x, valid_y) = (
        x.slice(s![600.., ..]).to_owned(),
        reg.slice(s![600..]).to_owned(),
    );
    let (s, out) = job(
        r#"{"model_kind": "xgboost", "num_round": "60", "max_depth": "4", "learning_rate": "0.5",
            "subsample": "0.8", "seed": "3", "nthread": "1", "eval_metric": "rmse,r2",
            "early_stopping_rounds": "3"}"#,
        &labelled_csv(&train_x, &train_y),
        Some(&labelled_csv(&valid_x, &valid_y)),
    );
    let stdout = e2e::text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, e2e::text(&out.stderr));
    // The built-in's round lines (hyperparameter tuning reads `validation-<metric>` from them).
    let rounds: Vec<&str> = stdout.lines().filter(|l| l.starts_with('[')).collect();
    assert!(rounds[0].starts_with("[0]\ttrain-rmse:"), "{}", rounds[0]);
    assert!(rounds[0].contains("\tvalidation-rmse:") && rounds[0].contains("\tvalidation-r2:"));
    assert!(stdout.contains("metric: validation:r2="), "{stdout}");

    // Early stopping watched r2 (the last metric asked for), larger is better, and kept its best.
    let e = evaluation(&s);
    let best = e["best_iteration"].as_u64().unwrap() as usize;
    let run = e["rounds_run"].as_u64().unwrap() as usize;
    assert_eq!(e["early_stopping_metric"], "r2");
    assert_eq!(rounds.len(), run);
    assert!(run == 60 || run == best + 4, "ran {run}, best {best}");
    let r2 = |l: &str| -> f64 { l.rsplit("validation-r2:").next().unwrap().parse().unwrap() };
    let top = rounds.iter().map(|l| r2(l)).fold(f64::MIN, f64::max);
    assert_eq!(r2(rounds[best]), top);

    // XGBoost trained directly with the same parameters for the kept rounds: the same model.
    let params = XgbParams::default()
        .set("objective", "reg:squarederror")
        .set("max_depth", 4)
        .set("eta", 0.5)
        .set("subsample", 0.8)
        .set("seed", 3)
        .set("nthread", 1);
    let dtrain = xgb_util::dmatrix(train_x.view(), Some(&train_y)).unwrap();
    let direct =
        xgb_util::train_rounds(&params, &[(&dtrain, "train")], best as u32 + 1, &mut |_| {
            Ok(true)
        })
        .unwrap();
    let dvalid = xgb_util::dmatrix(valid_x.view(), None).unwrap();
    let want = direct.predict(&dvalid).unwrap();
    let saved = saved_booster(&s).predict(&dvalid).unwrap();
    close(&saved, &want, "saved model vs XGBoost trained directly");

    // Served from the model directory (manifest and xgboost-model), CSV by default.
    let server = Server::ready(&s.opt_ml, &[]);
    let reply = post(&server, &csv(&valid_x), None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    close(&numbers(&reply.text()), &want, "served");
}

#[test]
fn every_builtin_objective_trains_and_serves_as_xgboost_predicts() {
    let (x, reg, bin, multi) = data(400);
    let rows = x.slice(s![..40, ..]).to_owned();
    let d = xgb_util::dmatrix(rows.view(), None).unwrap();
    let positive = reg.mapv(|v| v.max(0.1));
    for (objective, y, extra) in [
        ("reg:squarederror", &reg, ""),
        ("reg:absoluteerror", &reg, ""),
        ("reg:pseudohubererror", &reg, ""),
        ("reg:squaredlogerror", &positive, ""),
        ("reg:logistic", &bin, ""),
        ("reg:gamma", &positive, ""),
        (
            "reg:tweedie",
            &positive,
            r#", "tweedie_variance_power": "1.3""#,
        ),
        ("count:poisson", &positive, ""),
        ("survival:cox", &positive, ""),
        ("binary:logistic", &bin, r#", "scale_pos_weight": "2""#),
        ("binary:logitraw", &bin, ""),
        ("binary:hinge", &bin, ""),
        ("multi:softmax", &multi, r#", "num_class": "3""#),
        (
            "multi:softprob",
            &multi,
            r#", "num_class": "3", "eval_metric": "mlogloss,accuracy,f1""#,
        ),
        ("rank:pairwise", &bin, ""),
        ("rank:ndcg", &multi, ""),
        ("rank:map", &bin, ""),
    ] {
        let train = if objective.starts_with("rank:") {
            ranking_libsvm(&x, y)
        } else {
            labelled_csv(&x, y)
        };
        let hp = format!(
            r#"{{"model_kind": "xgboost", "num_round": "8", "max_depth": "3", "nthread": "1", "objective": "{objective}"{extra}}}"#
        );
        let (s, out) = job(&hp, &train, None);
        assert!(
            out.status.success(),
            "{objective}: {}",
            e2e::text(&out.stderr)
        );
        let want = saved_booster(&s).predict(&d).unwrap();
        let server = Server::ready(&s.opt_ml, &[]);
        assert_eq!(wait_loaded(&server), 200);
        let reply = post(&server, &csv(&rows), Some("application/json"));
        assert_eq!(reply.status, 200, "{objective}: {}", reply.text());
        let answer: serde_json::Value = serde_json::from_str(&reply.text()).unwrap();
        let got: Vec<f32> = answer["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| match &p["score"] {
                serde_json::Value::Array(a) => {
                    a.iter().map(|v| v.as_f64().unwrap() as f32).collect()
                }
                v => vec![v.as_f64().unwrap() as f32],
            })
            .collect();
        close(&got, &want, objective);
    }
}

#[test]
fn builtin_errors_read_as_the_builtin_writes_them() {
    let (x, reg, _, _) = data(50);
    let train = labelled_csv(&x, &reg);
    for (hyperparameters, reason) in [
        (r#"{"model_kind": "xgboost"}"#, "Missing required hyperparameter: num_round"),
        (
            r#"{"model_kind": "xgboost", "num_round": "5", "n_estimators": "5"}"#,
            "Extraneous hyperparameter found: n_estimators",
        ),
        (
            r#"{"model_kind": "xgboost", "num_round": "5", "learning_rate": "2"}"#,
            "Hyperparameter eta: 2.0 is not in [0, 1]",
        ),
        (
            r#"{"model_kind": "xgboost", "num_round": "5", "objective": "multi:softprob"}"#,
            "Require input for parameter 'num_class' for multi-classification",
        ),
        (
            r#"{"model_kind": "xgboost", "num_round": "5", "eval_metric": "auc"}"#,
            "Metric 'auc' can only be applied for classification and ranking problems.",
        ),
        (
            r#"{"model_kind": "xgboost", "num_round": "5", "objective": "rank:ndcg"}"#,
            "objective rank:ndcg ranks rows within queries: give the 'train' channel as libsvm with qid:<id> on every row",
        ),
        (
            r#"{"model_kind": "xgboost", "num_round": "5", "objective": "binary:logistic"}"#,
            "channel 'train': row 1: label 10.465002: objective binary:logistic needs labels in [0, 1]",
        ),
    ] {
        let (s, out) = job(hyperparameters, &train, None);
        assert!(!out.status.success(), "{hyperparameters}");
        let failure = s.failure_reason().unwrap();
        assert!(failure.contains(reason), "{hyperparameters}: {failure}");
    }
}

#[test]
fn save_model_on_termination_keeps_the_rounds_finished_at_sigterm() {
    let (x, reg, _, _) = data(20_000);
    let train = labelled_csv(&x, &reg);
    for save in [true, false] {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            &format!(
                r#"{{"model_kind": "xgboost", "num_round": "100000", "max_depth": "10", "nthread": "1", "save_model_on_termination": "{save}"}}"#
            ),
        );
        s.data_file("train", "part-0", train.as_bytes());
        let (status, _) = s.train_stopped_at("[3]");
        if save {
            assert!(status.success(), "{status:?}: {:?}", s.failure_reason());
            let e = evaluation(&s);
            assert_eq!(e["partial"], true);
            let run = e["rounds_run"].as_u64().unwrap();
            assert!(run >= 4, "{e}");
            let json = saved_booster(&s).save_buffer(false).unwrap();
            let trees = common::models::trees::TreeModel::from_xgboost_json(&json).unwrap();
            assert_eq!(trees.n_trees() as u64, run);
        } else {
            assert!(!status.success());
            assert!(s.failure_reason().unwrap().contains("SIGTERM"));
            assert!(!s.opt_ml.model_dir().join("xgboost-model").exists());
        }
    }
}

/// A job killed mid-training (SIGKILL, as a reclaimed spot instance) and started again with the
/// same checkpoint directory resumes from its newest checkpoint and ends with the model of an
/// uninterrupted run: the same predictions (no row or column sampling, so XGBoost's rounds are
/// deterministic; with sampling the resumed rounds draw other samples).
#[test]
fn a_killed_job_resumes_from_its_checkpoints_to_the_uninterrupted_model() {
    let (x, reg, _, _) = data(20_000);
    let train = labelled_csv(&x, &reg);
    let hp = r#"{"model_kind": "xgboost", "num_round": "60", "max_depth": "8", "nthread": "1"}"#;
    let job = |checkpoints: &std::path::Path| {
        let s = Sandbox::new();
        s.config("hyperparameters.json", hp).config(
            "checkpointconfig.json",
            &format!(
                r#"{{"LocalPath": "{}", "S3Uri": "s3://bucket/ck"}}"#,
                checkpoints.display()
            ),
        );
        s.data_file("train", "part-0", train.as_bytes());
        s
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = job(whole_dir.path());
    let out = whole.run_train();
    assert!(out.status.success(), "{}", e2e::text(&out.stderr));
    // Every round's checkpoint stays until S3 has it (no uploader here), and nothing else.
    assert_eq!(std::fs::read_dir(whole_dir.path()).unwrap().count(), 60);

    let dir = tempfile::tempdir().unwrap();
    let killed = job(dir.path());
    let (status, _) = killed.train_signalled_at("[5]", "KILL");
    assert!(!status.success());
    // Whole checkpoints only (a kill during a write leaves a `.sagemaker-ignore` file, which
    // the resumed job skips).
    let left = e2e::checkpoint_numbers(dir.path(), "xgboost-checkpoint.");
    let newest = *left.iter().max().unwrap();
    assert!(left.len() >= 5 && (newest as usize) < 59, "{left:?}");
    assert!(!killed.opt_ml.model_dir().join("manifest.json").exists());

    let out = killed.run_train();
    let log = e2e::text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("Resuming from iteration {newest}")),
        "{log}"
    );
    let stdout = e2e::text(&out.stdout);
    assert!(stdout.starts_with(&format!("[{}]", newest + 1)), "{stdout}");
    assert_eq!(evaluation(&killed)["rounds_run"], 60);
    let d = xgb_util::dmatrix(x.view(), None).unwrap();
    let want = saved_booster(&whole).predict(&d).unwrap();
    let got = saved_booster(&killed).predict(&d).unwrap();
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "resumed model differs by up to {worst}");
    assert_eq!(evaluation(&killed)["scores"], evaluation(&whole)["scores"]);
}

/// Writes `rows.csv` (label first, no header) as the files users write: Parquet by pandas
/// (snappy and zstd halves, nulls for missing values; the second half with pandas' default
/// `index=None` and an index of its own, which pandas keeps as a column that is no feature)
/// with the XGBoost 1.x venv's pandas, and
/// RecordIO-protobuf by the SageMaker SDK (dense and sparse), when those Pythons are provisioned.
const WRITE_TRAINING_FILES: &str = r#"
import sys, numpy as np, pandas as pd
kind, work = sys.argv[1], sys.argv[2]
df = pd.read_csv(f"{work}/rows.csv", header=None)
df.columns = ["label"] + [f"f{i}" for i in range(df.shape[1] - 1)]
if kind == "parquet":
    half = len(df) // 2
    df.iloc[:half].to_parquet(f"{work}/part-0.parquet", compression="snappy", index=False)
    tail = df.iloc[half:].copy()
    tail.index = [f"r{i}" for i in tail.index]
    tail.to_parquet(f"{work}/part-1.parquet", compression="zstd")
else:
    import scipy.sparse
    from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor
    x = df.iloc[:, 1:].to_numpy(dtype=np.float32)
    y = df["label"].to_numpy(dtype=np.float32)
    with open(f"{work}/dense.rec", "wb") as f:
        write_numpy_to_dense_tensor(f, x, y)
    r, c = np.nonzero(~np.isnan(x))
    sparse = scipy.sparse.csr_matrix((x[r, c], (r, c)), shape=x.shape)
    with open(f"{work}/sparse.rec", "wb") as f:
        write_spmatrix_to_sparse_tensor(f, sparse, y)
"#;

#[test]
fn parquet_and_recordio_training_files_give_the_model_of_the_same_rows_in_csv() {
    let (x, reg, _, _) = data(300);
    let rows = labelled_csv(&x, &reg);
    let hp = r#"{"model_kind": "xgboost", "num_round": "10", "max_depth": "3", "nthread": "1"}"#;
    let (reference, out) = job(hp, &rows, None);
    assert!(out.status.success(), "{}", e2e::text(&out.stderr));
    let d = xgb_util::dmatrix(x.view(), None).unwrap();
    let want = saved_booster(&reference).predict(&d).unwrap();
    let pythons = [
        (
            "parquet",
            e2e::provisioned("XGBOOST1_PYTHON", "pandas with scripts/xgboost1-venv.sh"),
            vec![vec!["part-0.parquet", "part-1.parquet"]],
            "application/x-parquet",
        ),
        (
            "recordio",
            e2e::sdk_python(),
            vec![vec!["dense.rec"], vec!["sparse.rec"]],
            "recordio-protobuf",
        ),
    ];
    for (kind, python, file_sets, content_type) in pythons {
        let Some(python) = python else {
            continue;
        };
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("rows.csv"), &rows).unwrap();
        let out = std::process::Command::new(python)
            .args(["-c", WRITE_TRAINING_FILES, kind])
            .arg(work.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}: {}", e2e::text(&out.stderr));
        for files in file_sets {
            // Declared by ContentType (the built-in's short names), then found from the bytes.
            for declared in [true, false] {
                let s = Sandbox::new();
                s.config("hyperparameters.json", hp);
                if declared {
                    s.config(
                        "inputdataconfig.json",
                        &format!(r#"{{"train": {{"ContentType": "{content_type}"}}}}"#),
                    );
                }
                for f in &files {
                    s.data_file("train", f, &std::fs::read(work.path().join(f)).unwrap());
                }
                let out = s.run_train();
                assert!(
                    out.status.success(),
                    "{files:?}: {}",
                    e2e::text(&out.stderr)
                );
                let got = saved_booster(&s).predict(&d).unwrap();
                assert_eq!(got, want, "{files:?}: the model differs from the CSV one");
            }
        }
    }
}
