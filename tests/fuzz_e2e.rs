//! Bounded fuzzing of every parser: request decoders, training parsers, hyperparameters, the
//! manifest and payloads of a model directory, and `model.tar.gz`. Valid inputs are mutated
//! (bit flips, cut and repeated ranges, and tokens that broke parsers before: `1e39`, `NaN`,
//! byte-order marks, NUL, stray quotes and brackets) for `FUZZ_SECONDS` per target (default 3).
//!
//! Each input must give a value or a one-line error, never a panic; decoded numbers are never
//! infinite, and any answer a mutated model gives is finite or refused. A failure prints the
//! seed and the input. The seed is fixed (so CI is repeatable: a slower machine runs a prefix of
//! a faster one's inputs); `FUZZ_SEED=<n>` replays another, `FUZZ_SEED=random` explores.

use common::data::{tabular, Format, RowSink, Schema};
use common::datagen::Layout;
use common::opt_ml::OptMl;
use e2e::{fire_bytes, sample_payload, train_small_fire_model, Sandbox};
use serve::codec::{self, Input, Output};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Tokens spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"1e39",
    b"-1e39",
    b"1e400",
    b"NaN",
    b"inf",
    b"-0",
    b"0x1f",
    b"\xef\xbb\xbf",
    b"\0",
    b"\xff",
    b",",
    b",,",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"true",
    b"99999999999999999999999999",
    b"{\"instances\":",
    b"\"features\":",
    b"t_mean",
    b"label",
    b"qid:3",
    b"1:0.5",
    b" ",
    b"\t",
    b"\\u0000",
    b"[[",
    b"]]",
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn range(&mut self, len: usize) -> std::ops::Range<usize> {
        let a = self.below(len + 1);
        let b = (a + self.below(64)).min(len);
        a..b
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let token = TOKENS[rng.below(TOKENS.len())];
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let r = rng.range(v.len());
                v.drain(r);
            }
            2 => {
                v.splice(at..at, token.iter().copied());
            }
            3 => {
                let r = rng.range(v.len());
                v.splice(r, token.iter().copied());
            }
            4 => {
                let r = rng.range(v.len());
                let copy = v[r].to_vec();
                v.splice(at..at, copy);
            }
            5 => v.truncate(at),
            _ => {
                let r = rng.range(v.len());
                for b in &mut v[r] {
                    *b = rng.next() as u8;
                }
            }
        }
    }
    v
}

/// Runs `check` on mutations of `seeds` for the time budget; a panic fails with the input.
fn fuzz(target: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8]) -> Result<(), String>) {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let seed = match std::env::var("FUZZ_SEED").ok().as_deref() {
        Some("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        Some(n) => n.parse().expect("FUZZ_SEED is a number or 'random'"),
        None => 0x5eed_f00d,
    } | 1;
    let mut rng = Rng(seed);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut runs = 0u64;
    while Instant::now() < end {
        let pick = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[pick]);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let shown = String::from_utf8_lossy(&input[..input.len().min(300)]).into_owned();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(why)) => panic!("{target} (FUZZ_SEED={seed}): {why}; input: {shown:?}"),
            Err(_) => panic!("{target} (FUZZ_SEED={seed}): panicked on input {shown:?}"),
        }
        runs += 1;
    }
    println!("fuzz {target}: {runs} inputs in {seconds} s (FUZZ_SEED={seed})");
}

/// An error message must be one line of reasonable length.
fn one_line(message: &str) -> Result<(), String> {
    if message.contains('\n') || message.len() > 4096 {
        return Err(format!("error message is not one short line: {message:?}"));
    }
    Ok(())
}

fn no_infinity(values: impl IntoIterator<Item = f32>) -> Result<(), String> {
    match values.into_iter().find(|v| v.is_infinite()) {
        Some(v) => Err(format!("decoded value {v}")),
        None => Ok(()),
    }
}

fn schemas() -> Vec<Schema> {
    let mut tabular = common::kinds::fire::schema();
    tabular.allow_missing = true;
    // A tabular model with text columns: the first and the last feature are categorical.
    let mut categorical = tabular.clone();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect();
    categorical.categories = vec![None; categorical.feature_names.len()];
    categorical.categories[0] = Some(common::data::categories::Categories::new(names(&[
        "1.5", "INLAND", "NEAR BAY",
    ])));
    *categorical.categories.last_mut().unwrap() =
        Some(common::data::categories::Categories::new(names(&[
            "a", "b",
        ])));
    vec![
        common::kinds::fire::schema(),
        common::kinds::iops::schema(common::kinds::iops::Models {
            classifier: true,
            regressor: true,
        }),
        tabular,
        categorical,
    ]
}

#[test]
fn request_decoders() {
    let seeds: Vec<Vec<u8>> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-payloads"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
    let schemas = schemas();
    let mut which = 0usize;
    fuzz("request decoders", &seeds, |body| {
        which += 1;
        // Every schema meets every format: the schema changes every fifth input.
        let schema = &schemas[(which / 5) % schemas.len()];
        let input = [
            Input::Csv,
            Input::Json,
            Input::JsonLines,
            Input::Libsvm,
            Input::RecordIo,
        ][which % 5];
        match codec::decode(input, body, schema, which.is_multiple_of(2)) {
            Ok(x) => no_infinity(x.iter().copied()),
            Err(e) => one_line(&e.message()),
        }?;
        if let Err(e) = codec::input_format(Some("text/csv; charset=utf-8"), body) {
            one_line(&e.message())?;
        }
        Ok(())
    });
}

#[test]
fn training_parsers() {
    let mut seeds: Vec<Vec<u8>> = [
        Layout::Json,
        Layout::JsonLines,
        Layout::CsvHeader,
        Layout::CsvLabelFirst,
    ]
    .into_iter()
    .map(|l| fire_bytes(12, 5, l))
    .collect();
    seeds.push(b"1 1:0.5 3:2\n0 2:1.5 qid:2\n".to_vec());
    seeds.push(b"price,a,b\n1,2,3\n2,,4\n".to_vec());
    seeds.push(
        [
            recordio_example(&[1.5, f32::NAN, 3.0], 1.0),
            recordio_example(&[0.5, 2.0, 1.0], 0.0),
        ]
        .concat(),
    );
    let schema = common::kinds::fire::schema();
    let options = tabular::TabularOptions {
        label_column: "price".into(),
        csv_weights: false,
        delimiter: None,
    };
    let mut which = 0usize;
    fuzz("training parsers", &seeds, |bytes| {
        which += 1;
        let (values, error) = match which % 6 {
            0 | 1 => {
                let format = if which.is_multiple_of(6) {
                    Format::Json
                } else {
                    Format::Csv
                };
                let mut sink = RowSink::default();
                let r = format.parse(bytes, &schema, "f", &mut sink);
                (sink.features, r.err())
            }
            k => {
                let format = [
                    tabular::TabularFormat::Csv,
                    tabular::TabularFormat::JsonLines,
                    tabular::TabularFormat::Libsvm,
                    tabular::TabularFormat::RecordIo,
                ][k - 2];
                let mut table = tabular::Table::default();
                let r = tabular::parse(bytes, format, &options, "f", &mut table);
                (table.features, r.err())
            }
        };
        match error {
            Some(e) => one_line(&e.to_string()),
            None => no_infinity(values),
        }
    });
}

/// One RecordIO-framed `Record` with dense `values` features and a `values` label, written by
/// hand from AWS's `record.proto` (field numbers: Record.features 1, label 2; MapEntry key 1,
/// value 2; Value.float32_tensor 2; Float32Tensor.values 1).
fn recordio_example(features: &[f32], label: f32) -> Vec<u8> {
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128, "one-byte lengths only");
        [&[number << 3 | 2, bytes.len() as u8][..], bytes].concat()
    }
    let tensor = |values: &[f32]| {
        let packed: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        field(2, &field(1, &packed))
    };
    let entry = |values: &[f32]| [field(1, b"values"), field(2, &tensor(values))].concat();
    let record = [field(1, &entry(features)), field(2, &entry(&[label]))].concat();
    let mut out = 0xced7_230a_u32.to_le_bytes().to_vec();
    out.extend((record.len() as u32).to_le_bytes());
    out.extend(&record);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}

/// Parquet training files (read through the parquet crate's reader), from files with nulls,
/// integers and three codecs.
#[test]
fn parquet_files() {
    use parquet::data_type::{DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    let work = tempfile::tempdir().unwrap();
    let seeds: Vec<Vec<u8>> = [
        parquet::basic::Compression::UNCOMPRESSED,
        parquet::basic::Compression::SNAPPY,
        parquet::basic::Compression::ZSTD(Default::default()),
    ]
    .into_iter()
    .map(|codec| {
        let schema = parquet::schema::parser::parse_message_type(
            "message m { REQUIRED DOUBLE label; OPTIONAL DOUBLE a; REQUIRED INT64 b; }",
        )
        .unwrap();
        let props = WriterProperties::builder().set_compression(codec).build();
        let mut out = Vec::new();
        let mut w = parquet::file::writer::SerializedFileWriter::new(
            &mut out,
            std::sync::Arc::new(schema),
            std::sync::Arc::new(props),
        )
        .unwrap();
        let mut g = w.next_row_group().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[1.0, 0.0, 1.0], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        let defs = [1, 0, 1];
        c.typed::<DoubleType>()
            .write_batch(&[0.5, 2.5], Some(&defs), None)
            .unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<Int64Type>()
            .write_batch(&[3, 4, 5], None, None)
            .unwrap();
        c.close().unwrap();
        g.close().unwrap();
        w.close().unwrap();
        out
    })
    .collect();
    let options = tabular::TabularOptions {
        label_column: "label".into(),
        csv_weights: false,
        delimiter: None,
    };
    let path = work.path().join("f.parquet");
    fuzz("parquet files", &seeds, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let mut table = tabular::Table::default();
        match common::data::parquet::read(&path, &options, "f", &mut table) {
            Err(e) => one_line(&e.to_string()),
            Ok(()) => no_infinity(table.features),
        }
    });
}

#[test]
fn hyperparameters() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"model_kind": "fire_ensemble", "models": "random_forest,gradient_boosting", "gb_eta": "0.1", "rf_num_trees": "20"}"#,
        r#"{"model_kind": "iops", "num_round": "50", "eta": "0.3", "objective": "multi:softprob"}"#,
        r#"{"model_kind": "tabular", "candidates": "xgboost,knn", "label_column": "y", "_tuning_objective_metric": "validation:rmse"}"#,
        r#"{"threshold": "\"0.4\"", "weighting": "AUC", "seed": 7, "validation_fraction": 1e-1}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz(
        "hyperparameters",
        &seeds,
        |bytes| match common::hyperparams::Hyperparameters::from_json(bytes)
            .and_then(|hp| train::config::TrainConfig::from_hyperparameters(&hp))
        {
            Ok(_) => Ok(()),
            Err(e) => one_line(&e.to_string()),
        },
    );
}

/// Fuzzes each file of `trained`'s model directory in turn (one mutated file per directory):
/// loading must fail with one line, or the model must answer `row` with finite numbers or a 4xx.
fn fuzz_model_files(kind: &str, trained: &Sandbox, row: &[u8], work: &std::path::Path) {
    let model_dir = trained.opt_ml.model_dir();
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    for (name, _) in &files {
        let seeds = vec![files.iter().find(|(n, _)| n == name).unwrap().1.clone()];
        let mut k = 0;
        fuzz(&format!("{kind} model file {name}"), &seeds, |bytes| {
            k += 1;
            let root = work.join(format!("{kind}-{name}-{k}"));
            let dir = root.join("model");
            std::fs::create_dir_all(&dir).unwrap();
            for (n, b) in &files {
                std::fs::write(dir.join(n), if n == name { bytes } else { b }).unwrap();
            }
            let result = match serve::model::LoadedModel::load(&OptMl::at(&root)) {
                Err(e) => one_line(&e.to_string()),
                Ok(m) => match m.answer(row.to_vec(), Input::Csv, false, 1, |p| {
                    codec::encode(p, Output::Json, false)
                }) {
                    Ok(text) if text.contains("NaN") || text.contains("inf") => {
                        Err(format!("answer with a non-finite number: {text}"))
                    }
                    Ok(_) => Ok(()),
                    Err(e) => one_line(&e.message()),
                },
            };
            std::fs::remove_dir_all(&root).unwrap();
            result
        });
    }
}

#[test]
fn tabular_and_iops_model_files() {
    let work = tempfile::tempdir().unwrap();
    let housing = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datasets/california_housing_targetfirst.csv.gz"
    ))
    .unwrap();
    for candidate in ["xgboost", "linear", "knn"] {
        let s = Sandbox::new();
        s.config(
            "hyperparameters.json",
            &format!(
                r#"{{"model_kind": "tabular", "candidates": "{candidate}", "num_round": "10"}}"#
            ),
        );
        s.data_file("train", "housing.csv.gz", &housing);
        assert!(s.run_train().status.success());
        fuzz_model_files(
            &format!("tabular {candidate}"),
            &s,
            &sample_payload("housing-single.csv"),
            work.path(),
        );
    }
    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        r#"{"model_kind": "iops", "num_round": "10"}"#,
    );
    let mut bytes = Vec::new();
    common::datagen::iops::write(
        &common::datagen::iops::insights(&mut common::datagen::rng(3), 600),
        common::datagen::iops::IopsLayout::Csv,
        &mut bytes,
    )
    .unwrap();
    s.data_file("train", "insights.csv", &bytes);
    assert!(s.run_train().status.success());
    fuzz_model_files("iops", &s, &sample_payload("iops-single.csv"), work.path());
}

#[test]
fn model_directories_and_archives() {
    let trained = Sandbox::new();
    train_small_fire_model(&trained, 600);
    let model_dir = trained.opt_ml.model_dir();
    let work = tempfile::tempdir().unwrap();
    fuzz_model_files(
        "fire",
        &trained,
        &sample_payload("fire-single.csv"),
        work.path(),
    );
    // model.tar.gz of the same directory.
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    tar.append_dir_all(".", &model_dir).unwrap();
    let archive = tar.into_inner().unwrap().finish().unwrap();
    let mut k = 0;
    fuzz("model.tar.gz", &[archive], |bytes| {
        k += 1;
        let dir = work.path().join(format!("archive-{k}"));
        let scratch = work.path().join(format!("scratch-{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.tar.gz"), bytes).unwrap();
        let result = match common::artifact::open_model_dir(&dir, &scratch) {
            Ok(_) => Ok(()),
            Err(e) => one_line(&e.to_string()),
        };
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&scratch);
        result
    });
}

#[test]
fn xgboost_model_files_trained_elsewhere() {
    use common::kinds::xgboost::{Options, XgboostModel};
    use common::models::xgboost::{self as xgb_util, XgbParams};
    let x = ndarray::Array2::from_shape_fn((300, 3), |(r, c)| ((r * 7 + c * 3) % 11) as f32);
    let y = ndarray::Array1::from_shape_fn(300, |r| f32::from(x[[r, 0]] + x[[r, 1]] > 9.0));
    let m = xgb_util::dmatrix(x.view(), Some(&y)).unwrap();
    let p = XgbParams::default()
        .set("objective", "binary:logistic")
        .set("max_depth", 3)
        .set("nthread", 1);
    let b = xgb_util::train_rounds(&p, &[(&m, "train")], 4, &mut |_| Ok(true)).unwrap();
    // JSON and UBJSON files, read by this build's own readers, never crash or answer NaN.
    let seeds = vec![b.save_buffer(false).unwrap(), b.save_buffer(true).unwrap()];
    let work = tempfile::tempdir().unwrap();
    let row = x.slice(ndarray::s![..2, ..]).to_owned();
    fuzz("XGBoost model files", &seeds, |bytes| {
        let dir = work.path();
        std::fs::write(dir.join("xgboost-model"), bytes).unwrap();
        let mut manifest = common::kinds::xgboost::scan(dir, &Options::default()).unwrap();
        match XgboostModel::load(dir, &mut manifest, &Options::default()) {
            Err(e) => one_line(&e.to_string()),
            Ok(model) => {
                use common::kinds::Model;
                if model.schema().feature_names.len() != 3 {
                    return Ok(());
                }
                let p = model.predict(row.view()).map_err(|e| e.to_string())?;
                let mut text = String::new();
                for i in 0..p.records() {
                    p.csv_record(i, &mut text);
                }
                if p.first_non_finite().is_none() && (text.contains("NaN") || text.contains("inf"))
                {
                    return Err(format!("a non-finite answer passed as finite: {text}"));
                }
                Ok(())
            }
        }
    });
}
