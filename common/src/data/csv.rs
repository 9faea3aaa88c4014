//! CSV training data.
//!
//! Two layouts, told apart by the first line of each file:
//! - a header naming the columns (any order, extra columns ignored): features are matched by
//!   name and the label by one of the schema's label names;
//! - no header (SageMaker's built-in convention): the label in column 0, then the features in
//!   model order, exactly `1 + n_features` columns.
//!
//! A line that does not fit fails with the file, line number and column.

use super::{RowSink, Schema};
use crate::error::{Error, Result};
use std::io::BufRead;

/// Where each needed value sits in a line.
struct Columns {
    /// Column index of the label.
    label: usize,
    /// Column index of each feature, in model order.
    features: Vec<usize>,
    /// Number of columns every line must have.
    width: usize,
    /// Column names for messages.
    names: Vec<String>,
}

impl Columns {
    fn headerless(schema: &Schema) -> Self {
        let n = schema.feature_names.len();
        let mut names = vec![schema.label_names[0].clone()];
        names.extend(schema.feature_names.iter().cloned());
        Self {
            label: 0,
            features: (1..=n).collect(),
            width: n + 1,
            names,
        }
    }

    fn from_header(fields: &[&str], schema: &Schema, source: &str) -> Result<Self> {
        let names: Vec<String> = fields.iter().map(|f| unquote(f).to_owned()).collect();
        let label = names
            .iter()
            .position(|n| schema.is_label(n))
            .ok_or_else(|| {
                Error::Data(format!(
                    "{source}: line 1: the header has no label column (expected one named {})",
                    schema.label_names.join(" or ")
                ))
            })?;
        let missing: Vec<&str> = schema
            .feature_names
            .iter()
            .filter(|f| !names.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::Data(format!(
                "{source}: line 1: the header lacks feature column(s) {}",
                missing.join(", ")
            )));
        }
        let features = schema
            .feature_names
            .iter()
            .map(|f| names.iter().position(|n| n == f).unwrap())
            .collect();
        Ok(Self {
            label,
            features,
            width: names.len(),
            names,
        })
    }
}

/// Parses CSV lines from `reader` into `sink`; `source` names the file in errors.
pub fn parse(
    mut reader: impl BufRead,
    schema: &Schema,
    source: &str,
    sink: &mut RowSink,
) -> Result<()> {
    let mut line = String::new();
    let mut number = 0usize;
    let mut columns: Option<Columns> = None;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::Data(format!("{source}: line {}: {e}", number + 1)))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(',').collect();
        let cols = match &columns {
            Some(c) => c,
            None => {
                let is_header = fields
                    .iter()
                    .any(|f| !f.trim().is_empty() && parse_number(f).is_none());
                let c = if is_header {
                    columns = Some(Columns::from_header(&fields, schema, source)?);
                    continue;
                } else {
                    Columns::headerless(schema)
                };
                columns.insert(c)
            }
        };
        push_line(&fields, cols, schema, sink)
            .map_err(|m| Error::Data(format!("{source}: line {number}: {m}")))?;
    }
}

fn push_line(
    fields: &[&str],
    cols: &Columns,
    schema: &Schema,
    sink: &mut RowSink,
) -> Result<(), String> {
    if fields.len() != cols.width {
        let layout = if cols.label == 0 && cols.width == schema.feature_names.len() + 1 {
            format!("the label then the {} features", schema.feature_names.len())
        } else {
            "as many as the header".to_owned()
        };
        return Err(format!(
            "expected {} columns ({layout}), found {}",
            cols.width,
            fields.len()
        ));
    }
    let value = |i: usize| -> Result<f64, String> {
        let raw = fields[i];
        if raw.trim().is_empty() {
            return Err(format!("column {} ('{}') is empty", i + 1, cols.names[i]));
        }
        parse_number(raw).ok_or_else(|| {
            format!(
                "column {} ('{}') is not a number: \"{}\"",
                i + 1,
                cols.names[i],
                raw.trim()
            )
        })
    };
    let label = schema.label(value(cols.label)?)?;
    let start = sink.features.len();
    for &i in &cols.features {
        match value(i) {
            Ok(v) => sink.features.push(v as f32),
            Err(e) => {
                sink.features.truncate(start);
                return Err(e);
            }
        }
    }
    sink.labels.push(label);
    Ok(())
}

/// A finite number, tolerating surrounding spaces and quotes.
fn parse_number(field: &str) -> Option<f64> {
    unquote(field).parse::<f64>().ok().filter(|v| v.is_finite())
}

fn unquote(field: &str) -> &str {
    field.trim().trim_matches('"').trim()
}
