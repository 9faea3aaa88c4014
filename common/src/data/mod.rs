//! Training data: every file of a channel, in any accepted format, into one [`Dataset`].
//!
//! Flow: [`files::data_files`] lists a channel's files (recursive, sorted, hidden and `_` files
//! skipped, `.gz` opened transparently), [`Format::detect`] picks a parser per file (the channel's
//! ContentType, else the extension, else the first byte), and the parsers in [`json`] and [`csv`]
//! push rows into a [`RowSink`] shaped by a [`Schema`]. Parsers take any `BufRead`, so `serve` and
//! the tests use them on in-memory bytes too. Nothing is ever written into a channel directory.

pub mod csv;
pub mod files;
pub mod json;

use crate::error::{Error, Result};
use ndarray::{Array1, Array2};
use std::io::BufRead;
use std::path::Path;

/// Which columns a model needs and how labels are read.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Feature names in model order.
    pub feature_names: Vec<String>,
    /// Names a label column or field may have, first one preferred (e.g. `label`, `fire_detected`).
    pub label_names: Vec<String>,
    /// Whether labels must be 0 or 1.
    pub binary_label: bool,
}

impl Schema {
    /// Index of a feature by name.
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }

    /// Whether `name` names the label.
    pub fn is_label(&self, name: &str) -> bool {
        self.label_names.iter().any(|n| n == name)
    }

    /// Checks and converts one label value.
    pub fn label(&self, value: f64) -> std::result::Result<f32, String> {
        if !value.is_finite() {
            return Err(format!("label {value} is not a finite number"));
        }
        if self.binary_label && value != 0.0 && value != 1.0 {
            return Err(format!("label {value} is not 0 or 1"));
        }
        Ok(value as f32)
    }
}

/// Rows collected so far: features row-major, one label per row.
#[derive(Debug, Default)]
pub struct RowSink {
    /// Features, `n_features` values per row.
    pub features: Vec<f32>,
    /// One label per row.
    pub labels: Vec<f32>,
}

impl RowSink {
    /// Number of rows collected.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no row was collected.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Features and labels of one channel (or one split of it).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One row per sample, columns in [`Dataset::feature_names`] order.
    pub features: Array2<f32>,
    /// One label per row.
    pub labels: Array1<f32>,
    /// Column names.
    pub feature_names: Vec<String>,
}

impl Dataset {
    /// Builds a dataset from collected rows.
    pub fn from_sink(sink: RowSink, feature_names: Vec<String>) -> Self {
        let rows = sink.labels.len();
        let features = Array2::from_shape_vec((rows, feature_names.len()), sink.features)
            .expect("row sink holds n_features values per row");
        Self { features, labels: Array1::from(sink.labels), feature_names }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            features: self.features.select(ndarray::Axis(0), indices),
            labels: self.labels.select(ndarray::Axis(0), indices),
            feature_names: self.feature_names.clone(),
        }
    }

    /// Share of rows whose label is 1.
    pub fn positive_rate(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.labels.iter().filter(|&&y| y == 1.0).count() as f64 / self.len() as f64
    }
}

/// A file format the loaders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON documents: one `{"samples": [...]}` object, an array of samples, or JSON Lines.
    Json,
    /// Comma-separated values, with a header naming the columns or with the label in column 0.
    Csv,
}

impl Format {
    /// The format a channel ContentType names (parameters such as `; charset=utf-8` ignored).
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" | "csv" | "text/x-csv" | "application/csv" => Ok(Format::Csv),
            "application/json" | "json" | "application/jsonlines" | "application/x-jsonlines"
            | "application/jsonl" | "application/x-ndjson" | "jsonl" => Ok(Format::Json),
            _ => Err(Error::Config(format!(
                "ContentType '{content_type}' is not supported; use text/csv, application/json or application/jsonlines"
            ))),
        }
    }

    /// The format of one file: the channel's ContentType when given, else the extension
    /// (`.csv`, `.json`, `.jsonl`, `.ndjson`, under an optional `.gz`), else the first byte.
    pub fn detect(content_type: Option<&str>, path: &Path, first_byte: Option<u8>) -> Result<Self> {
        if let Some(ct) = content_type {
            return Self::from_content_type(ct);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv") => Ok(Format::Csv),
            Some("json" | "jsonl" | "ndjson") => Ok(Format::Json),
            _ => Ok(match first_byte {
                Some(b'{' | b'[') => Format::Json,
                _ => Format::Csv,
            }),
        }
    }

    /// Parses `reader` into `sink`; `source` names the file in errors.
    pub fn parse(self, reader: impl BufRead, schema: &Schema, source: &str, sink: &mut RowSink) -> Result<()> {
        match self {
            Format::Json => json::parse(reader, schema, source, sink),
            Format::Csv => csv::parse(reader, schema, source, sink),
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
        let first = reader.fill_buf().map_err(|e| Error::io(file, e))?.iter().find(|b| !b.is_ascii_whitespace()).copied();
        Format::detect(content_type, file, first)?.parse(reader, schema, &name, &mut sink)?;
        tracing::info!(channel, file = %name, rows_so_far = sink.len(), peak_mib = crate::peak_memory_mib(), "loaded data file");
    }
    if sink.is_empty() {
        return Err(Error::Data(format!("channel '{channel}' holds no data rows in its {} file(s)", files.len())));
    }
    Ok(Dataset::from_sink(sink, schema.feature_names.clone()))
}
