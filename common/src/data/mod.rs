//! Training data: every file of a channel, in any accepted format, into one [`Dataset`].
//!
//! Flow: [`files::data_files`] lists a channel's files (recursive, sorted, hidden and `_` files
//! skipped, `.gz` opened transparently), [`Format::detect`] picks a parser per file (the channel's
//! ContentType, else the extension, else the first byte), and the parsers in [`json`] and [`csv`]
//! push rows into a [`RowSink`] shaped by a [`Schema`]. Parsers take any `BufRead`, so `serve` and
//! the tests use them on in-memory bytes too. Nothing is ever written into a channel directory.

pub mod categories;
pub mod csv;
pub mod files;
pub mod json;
pub mod number;
pub mod parquet;
pub mod recordio;
pub mod tabular;

use crate::error::{Error, Result};
use ndarray::{Array1, Array2};
use std::io::{BufRead, Read};
use std::path::Path;

/// Which columns a model needs, which it can compute, and how its labels are read.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Feature names in model order.
    pub feature_names: Vec<String>,
    /// Features computed from the others when the input lacks them (IOPS's derived five).
    pub derived: Option<Derived>,
    /// The labels each training row carries, in order (one for most models).
    pub targets: Vec<Target>,
    /// Whether a feature may be missing (an empty CSV field or a JSON `null`, read as NaN) in
    /// requests; the tree models route missing values, the fire ensemble's logistic member cannot.
    pub allow_missing: bool,
    /// Per feature, its categories when it is categorical (empty: every feature is numeric).
    pub categories: Vec<Option<categories::Categories>>,
}

/// Features from index `first` on may be absent from the input; `compute(row, i)` gives feature
/// `i` from the row's values before `first`.
#[derive(Debug, Clone, Copy)]
pub struct Derived {
    /// Index of the first computable feature.
    pub first: usize,
    /// Computes one feature from the row.
    pub compute: fn(&[f32], usize) -> f32,
}

/// One label column or field.
#[derive(Debug, Clone)]
pub struct Target {
    /// Names the column or field may have, first one preferred (e.g. `label`, `fire_detected`).
    pub names: Vec<String>,
    /// What values are allowed.
    pub kind: TargetKind,
}

/// The values a label may take.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    /// 0 or 1 (also `true` / `false`).
    Binary,
    /// A class: its name (any case) or its index 0..k-1.
    Classes(Vec<String>),
    /// A number in `[min, max]`.
    Bounded {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
}

impl Target {
    /// The preferred name, for messages.
    pub fn name(&self) -> &str {
        &self.names[0]
    }

    /// Checks and converts a numeric label value.
    pub fn from_number(&self, value: f64) -> std::result::Result<f32, String> {
        let name = self.name();
        let value = number::checked(value).map_err(|e| format!("{name} {e}"))?;
        match &self.kind {
            TargetKind::Binary if value != 0.0 && value != 1.0 => {
                Err(format!("{name} {value} is not 0 or 1"))
            }
            TargetKind::Classes(c)
                if value.fract() != 0.0 || value < 0.0 || value >= c.len() as f64 =>
            {
                Err(format!(
                    "{name} {value} is not a class index 0..{} or one of {}",
                    c.len() - 1,
                    c.join(", ")
                ))
            }
            TargetKind::Bounded { min, max } if value < *min || value > *max => {
                Err(format!("{name} {value} is outside [{min}, {max}]"))
            }
            _ => Ok(value as f32),
        }
    }

    /// Checks and converts a label given as text: a class name, or a number.
    pub fn from_text(&self, text: &str) -> std::result::Result<f32, String> {
        let text = text.trim();
        if let TargetKind::Classes(c) = &self.kind {
            if let Some(i) = c.iter().position(|n| n.eq_ignore_ascii_case(text)) {
                return Ok(i as f32);
            }
        }
        match text.parse::<f64>() {
            Ok(v) => self.from_number(v),
            Err(_) => Err(format!("{} is not a number: \"{text}\"", self.name())),
        }
    }
}

impl Schema {
    /// Index of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }

    /// Index of the target `name` names.
    pub fn target_index(&self, name: &str) -> Option<usize> {
        self.targets
            .iter()
            .position(|t| t.names.iter().any(|n| n == name))
    }

    /// Feature `k`'s categories, when it is categorical.
    pub fn categories_of(&self, k: usize) -> Option<&categories::Categories> {
        self.categories.get(k).and_then(Option::as_ref)
    }

    /// Whether feature `i` may be left out of the input.
    pub fn is_derived(&self, i: usize) -> bool {
        self.derived.is_some_and(|d| i >= d.first)
    }

    /// Fills the features the input did not give (`present(i)` false): derived ones are
    /// computed, a missing input feature is an error naming it.
    pub fn complete_row(
        &self,
        row: &mut [f32],
        present: impl Fn(usize) -> bool,
    ) -> std::result::Result<(), String> {
        for i in 0..row.len() {
            if !present(i) && !self.is_derived(i) {
                return Err(format!("missing feature '{}'", self.feature_names[i]));
            }
        }
        if let Some(d) = self.derived {
            for i in d.first..row.len() {
                if !present(i) {
                    row[i] = (d.compute)(row, i);
                }
            }
        }
        Ok(())
    }
}

/// Rows collected so far: features row-major, the targets' labels row-major.
#[derive(Debug, Default)]
pub struct RowSink {
    /// Features, `n_features` values per row.
    pub features: Vec<f32>,
    /// Labels, one per target per row.
    pub labels: Vec<f32>,
    /// Rows collected.
    pub rows: usize,
}

impl RowSink {
    /// Appends the rows of `parts`, in order.
    pub fn append_all(&mut self, parts: Vec<RowSink>) {
        self.features
            .reserve(parts.iter().map(|p| p.features.len()).sum());
        self.labels
            .reserve(parts.iter().map(|p| p.labels.len()).sum());
        for part in parts {
            self.features.extend_from_slice(&part.features);
            self.labels.extend_from_slice(&part.labels);
            self.rows += part.rows;
        }
    }

    /// Number of rows collected.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was collected.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// Features and labels of one channel (or one split of it).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One row per sample, columns in [`Dataset::feature_names`] order.
    pub features: Array2<f32>,
    /// One label vector per target of the schema, one label per row.
    pub targets: Vec<Array1<f32>>,
    /// Column names.
    pub feature_names: Vec<String>,
    /// Categorical features and class names (tabular data with text; empty otherwise).
    pub encoding: categories::Encoding,
    /// Instance weights, when the data carries them.
    pub weights: Option<Array1<f32>>,
    /// Whether a missing value stands for an absent libsvm entry, a zero for models without a
    /// notion of missing (XGBoost still treats it as missing, as XGBoost does with libsvm).
    pub absent_is_zero: bool,
    /// Query ids of ranking data (libsvm `qid:`), one per row, when the data has them.
    pub query_ids: Option<Array1<u32>>,
}

impl Dataset {
    /// Builds a dataset from collected rows of `n_targets` labels each.
    pub fn from_sink(sink: RowSink, feature_names: Vec<String>, n_targets: usize) -> Self {
        let rows = sink.rows;
        let targets = (0..n_targets)
            .map(|t| (0..rows).map(|r| sink.labels[r * n_targets + t]).collect())
            .collect();
        let features = Array2::from_shape_vec((rows, feature_names.len()), sink.features)
            .expect("row sink holds n_features values per row");
        Self {
            features,
            targets,
            feature_names,
            encoding: categories::Encoding::default(),
            weights: None,
            absent_is_zero: false,
            query_ids: None,
        }
    }

    /// The first (for most models the only) target's labels.
    pub fn labels(&self) -> &Array1<f32> {
        &self.targets[0]
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            features: self.features.select(ndarray::Axis(0), indices),
            targets: self
                .targets
                .iter()
                .map(|t| t.select(ndarray::Axis(0), indices))
                .collect(),
            feature_names: self.feature_names.clone(),
            encoding: self.encoding.clone(),
            weights: self
                .weights
                .as_ref()
                .map(|w| w.select(ndarray::Axis(0), indices)),
            absent_is_zero: self.absent_is_zero,
            query_ids: self
                .query_ids
                .as_ref()
                .map(|q| q.select(ndarray::Axis(0), indices)),
        }
    }

    /// Share of rows whose first label is 1.
    pub fn positive_rate(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.labels().iter().filter(|&&y| y == 1.0).count() as f64 / self.len() as f64
    }
}

/// A media type's essence: lower-cased, its parameters (`; charset=utf-8`) dropped.
pub fn media_type_essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Longest line a text data file may have (a CSV row of about a million values).
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// Calls `each(line_number, text)` for every non-blank line of `reader`, line ends and a UTF-8
/// byte-order mark trimmed; a read error or a line over [`MAX_LINE_BYTES`] is located by
/// `source` and line number (memory stays bounded whatever the file holds).
pub(crate) fn for_each_line(
    mut reader: impl BufRead,
    source: &str,
    mut each: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut bytes = Vec::new();
    let mut number = 0usize;
    loop {
        bytes.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| Error::Data(format!("{source}: line {}: {e}", number + 1)))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if n as u64 > MAX_LINE_BYTES {
            return Err(Error::Data(format!(
                "{source}: line {number} is longer than {} MiB; is this a text file with one record per line?",
                MAX_LINE_BYTES >> 20
            )));
        }
        let line = std::str::from_utf8(&bytes)
            .map_err(|e| Error::Data(format!("{source}: line {number} is not UTF-8 text: {e}")))?;
        let text = line.trim_end_matches(['\n', '\r']);
        let text = if number == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if !text.trim().is_empty() {
            each(number, text)?;
        }
    }
}

/// A file format the loaders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON documents: one `{"samples": [...]}` object, an array of samples, or JSON Lines.
    Json,
    /// Comma-separated values, with a header naming the columns or with the label in column 0.
    Csv,
    /// Apache Parquet, its columns named as a CSV header would name them.
    Parquet,
}

impl Format {
    /// The format a channel ContentType names (parameters such as `; charset=utf-8` ignored).
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        match media_type_essence(content_type).as_str() {
            "text/csv" | "csv" | "text/x-csv" | "application/csv" => Ok(Format::Csv),
            "application/json" | "json" | "application/jsonlines" | "application/x-jsonlines"
            | "application/jsonl" | "application/x-ndjson" | "jsonl" => Ok(Format::Json),
            "application/x-parquet" | "application/parquet" | "parquet" => Ok(Format::Parquet),
            _ => Err(Error::Config(format!(
                "ContentType '{content_type}' is not supported; use text/csv, application/json, application/jsonlines or application/x-parquet"
            ))),
        }
    }

    /// The format of one file: the channel's ContentType when given, else the extension
    /// (`.csv`, `.json`, `.jsonl`, `.ndjson`, under an optional `.gz`; `.parquet`), else the
    /// first bytes (`PAR1`; `{` or `[`).
    pub fn detect(content_type: Option<&str>, path: &Path, start: &[u8]) -> Result<Self> {
        if let Some(ct) = content_type {
            return Self::from_content_type(ct);
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv") => Ok(Format::Csv),
            Some("json" | "jsonl" | "ndjson") => Ok(Format::Json),
            Some("parquet") => Ok(Format::Parquet),
            _ if start.starts_with(b"PAR1") => Ok(Format::Parquet),
            _ => Ok(
                match start.iter().find(|b| !b.is_ascii_whitespace()).copied() {
                    Some(b'{' | b'[') => Format::Json,
                    _ => Format::Csv,
                },
            ),
        }
    }

    /// Parses `reader` into `sink`; `source` names the file in errors.
    pub fn parse(
        self,
        reader: impl BufRead,
        schema: &Schema,
        source: &str,
        sink: &mut RowSink,
    ) -> Result<()> {
        match self {
            Format::Json => json::parse(reader, schema, source, sink),
            Format::Csv => csv::parse(reader, schema, source, sink),
            Format::Parquet => Err(Error::Data(format!(
                "{source}: a Parquet file is read from its path (data::load_channel)"
            ))),
        }
    }
}

/// Loads every data file of a channel directory into one dataset.
///
/// `channel` names the channel in messages; `stop` is polled between files so a SIGTERM is
/// answered promptly.
pub fn load_channel(
    dir: &Path,
    channel: &str,
    content_type: Option<&str>,
    schema: &Schema,
    stop: &dyn Fn() -> Result<()>,
) -> Result<Dataset> {
    let files = files::data_files(dir, channel)?;
    let mut sink = RowSink::default();
    for file in &files {
        stop()?;
        let (mut reader, name) = files::open(dir, file)?;
        let start = reader.fill_buf().map_err(|e| Error::io(file, e))?;
        match Format::detect(content_type, file, start)? {
            Format::Parquet => {
                drop(reader);
                parquet::read_named(file, schema, &name, &mut sink)?
            }
            format => format.parse(reader, schema, &name, &mut sink)?,
        }
        tracing::info!(channel, file = %name, rows_so_far = sink.len(), peak_mib = crate::peak_memory_mib(), "loaded data file");
    }
    if sink.is_empty() {
        return Err(Error::Data(format!(
            "channel '{channel}' holds no data rows in its {} file(s)",
            files.len()
        )));
    }
    Ok(Dataset::from_sink(
        sink,
        schema.feature_names.clone(),
        schema.targets.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-feature schema keeps the fixtures readable.
    fn schema() -> Schema {
        Schema {
            feature_names: vec!["a".into(), "b".into()],
            derived: None,
            targets: vec![Target {
                names: vec!["label".into(), "fire_detected".into()],
                kind: TargetKind::Binary,
            }],
            allow_missing: false,
            categories: Vec::new(),
        }
    }

    fn parse(format: Format, text: &str) -> Result<RowSink> {
        let mut sink = RowSink::default();
        format.parse(text.as_bytes(), &schema(), "f.txt", &mut sink)?;
        Ok(sink)
    }

    fn rows(sink: &RowSink) -> (Vec<f32>, Vec<f32>) {
        (sink.features.clone(), sink.labels.clone())
    }

    #[test]
    fn json_layouts_all_give_the_same_rows() {
        let want = (vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0]);
        let layouts = [
            r#"{"samples":[{"features":{"a":1,"b":2},"label":0},{"features":{"b":4,"a":3},"label":1}]}"#,
            "{\n  \"features\": [\"a\", \"b\"],\n  \"samples\": [\n {\"id\": \"sample_0\", \"features\": {\"a\": 1.0, \"b\": 2.0}, \"label\": 0},\n {\"id\": \"sample_1\", \"features\": {\"a\": 3.0, \"b\": 4.0}, \"label\": 1}]\n}",
            r#"[{"a":1,"b":2,"label":0},{"a":3,"b":4,"label":true}]"#,
            "{\"a\":1,\"b\":2,\"label\":0}\n{\"features\":{\"a\":3,\"b\":4},\"fire_detected\":1}\n",
            "{\"features\":[1,2],\"label\":0}\n\n{\"features\":[\"3\",4],\"label\":\"1\"}",
        ];
        for text in layouts {
            assert_eq!(rows(&parse(Format::Json, text).unwrap()), want, "{text}");
        }
    }

    #[test]
    fn json_errors_name_file_line_and_field() {
        let e = parse(
            Format::Json,
            "{\"a\":1,\"b\":2,\"label\":0}\n{\"a\":1,\"label\":1}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("f.txt: line 2") && e.contains("missing feature 'b'"),
            "{e}"
        );
        let e = parse(Format::Json, "{\"a\":1,\"b\":\"hot\",\"label\":0}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'b' is not a number: \"hot\""), "{e}");
        let e = parse(Format::Json, "{\"a\":1,\"b\":2,\"label\":2}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 2 is not 0 or 1"), "{e}");
        let e = parse(Format::Json, "{\"a\":1,\"b\":2}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no 'label' field"), "{e}");
        let e = parse(
            Format::Json,
            "\n\n{\"samples\":[{\"a\":1,\"b\":2,\"label\":0},",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f.txt: line 3"), "{e}");
        let e = parse(Format::Json, "{\"features\":[1,2,3],\"label\":0}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds 3 values, expected 2"), "{e}");
    }

    #[test]
    fn csv_with_header_and_label_first() {
        let want = (vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0]);
        for text in [
            "b,label,a,id\n2,0,1,x\n4,1,3,y\n",
            "\"a\",\"b\",\"fire_detected\"\r\n1,2,0\r\n3,4,1\r\n",
            "0,1,2\n\n1,3,4\n",
            "0, 1e0 ,\"2\"\n1,3,4",
        ] {
            assert_eq!(rows(&parse(Format::Csv, text).unwrap()), want, "{text:?}");
        }
    }

    #[test]
    fn csv_errors_name_file_line_and_column() {
        let e = parse(Format::Csv, "0,1,2\n1,3\n").unwrap_err().to_string();
        assert!(
            e.contains(
                "f.txt: line 2: expected 3 columns (the label then the 2 features), found 2"
            ),
            "{e}"
        );
        let e = parse(Format::Csv, "a,b,label\n1,x,0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2: column 2 ('b') is not a number: \"x\""),
            "{e}"
        );
        let e = parse(Format::Csv, "a,label\n1,0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1: the header lacks feature column(s) b"),
            "{e}"
        );
        let e = parse(Format::Csv, "a,b\n1,0\n").unwrap_err().to_string();
        assert!(e.contains("no label column"), "{e}");
        let e = parse(Format::Csv, "0,1,\n").unwrap_err().to_string();
        assert!(e.contains("column 3 ('b') is empty"), "{e}");
    }

    #[test]
    fn format_detection() {
        let p = Path::new;
        let detect = |ct, name, start: &[u8]| Format::detect(ct, p(name), start).unwrap();
        assert_eq!(
            detect(Some("text/csv; charset=utf-8"), "x.json", b""),
            Format::Csv
        );
        assert_eq!(
            detect(Some("Application/JSONLines"), "x", b""),
            Format::Json
        );
        assert_eq!(
            detect(Some("application/x-parquet"), "x", b""),
            Format::Parquet
        );
        assert!(Format::detect(Some("text/libsvm"), p("x"), b"").is_err());
        assert_eq!(detect(None, "part.jsonl.gz", b""), Format::Json);
        assert_eq!(detect(None, "part.CSV", b"{"), Format::Csv);
        assert_eq!(detect(None, "part-0001", b"  {"), Format::Json);
        assert_eq!(detect(None, "part-0001", b"0,1"), Format::Csv);
        assert_eq!(detect(None, "part-0001", b"PAR1\x15"), Format::Parquet);
        assert_eq!(detect(None, "fire.parquet", b""), Format::Parquet);
    }

    #[test]
    fn channel_reads_all_files_sorted_recursive_and_gzipped_skipping_hidden() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.csv"), "1,3,4\n").unwrap();
        // Byte-order marks (PowerShell writes them) before JSON, gzipped or not, and before a
        // file whose format is found from its content.
        std::fs::write(
            dir.path().join("a.json"),
            "\u{feff}{\"samples\":[{\"a\":1,\"b\":2,\"label\":0}]}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("e"),
            "\u{feff}{\"a\":7,\"b\":8,\"label\":0}\n",
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all("\u{feff}{\"a\":5,\"b\":6,\"label\":1}\n".as_bytes())
            .unwrap();
        std::fs::write(dir.path().join("sub/c.jsonl.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.path().join(".DS_Store"), "junk").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        let d = load_channel(dir.path(), "train", None, &schema(), &|| Ok(())).unwrap();
        assert_eq!(
            d.features.as_slice().unwrap(),
            &[1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 5.0, 6.0]
        );
        assert_eq!(d.labels().to_vec(), vec![0.0, 1.0, 0.0, 1.0]);

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("_SUCCESS"), "").unwrap();
        let e = load_channel(empty.path(), "train", None, &schema(), &|| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Channel 'train' is empty"), "{e}");
        let e = load_channel(
            &dir.path().join("nope"),
            "validation",
            None,
            &schema(),
            &|| Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Missing required channel: validation"), "{e}");
    }
}
