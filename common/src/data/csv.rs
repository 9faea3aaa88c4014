//! CSV training data.
//!
//! Two layouts, told apart by the first line of each file:
//! - a header naming the columns (any order, extra columns ignored): features are matched by
//!   name and the label by one of the schema's label names;
//! - no header (SageMaker's built-in convention): the label in column 0, then the features in
//!   model order, exactly `1 + n_features` columns.
//!
//! A line that does not fit fails with the file, line number and column.

use super::number::unquote;
use super::{RowSink, Schema};
use crate::error::{Error, Result};
use std::io::BufRead;

/// Where each needed value sits in a line.
struct Columns {
    /// Column index of each target's label.
    targets: Vec<usize>,
    /// Column index of each feature, in model order; `None` for a derived feature to compute.
    features: Vec<Option<usize>>,
    /// Number of columns every line must have.
    width: usize,
    /// Column names for messages.
    names: Vec<String>,
    /// Whether the file has no header (label in column 0).
    headerless: bool,
}

impl Columns {
    fn headerless(schema: &Schema, source: &str) -> Result<Self> {
        if schema.targets.len() != 1 {
            let names: Vec<&str> = schema.targets.iter().map(|t| t.name()).collect();
            return Err(Error::Data(format!(
                "{source}: line 1: a headerless CSV holds one label (column 0), but this model needs {} ({}); add a header naming the columns or train one of them",
                names.len(),
                names.join(", ")
            )));
        }
        let n = schema.feature_names.len();
        let mut names = vec![schema.targets[0].name().to_owned()];
        names.extend(schema.feature_names.iter().cloned());
        Ok(Self {
            targets: vec![0],
            features: (1..=n).map(Some).collect(),
            width: n + 1,
            names,
            headerless: true,
        })
    }

    fn from_header(fields: &[&str], schema: &Schema, source: &str) -> Result<Self> {
        let names: Vec<String> = fields.iter().map(|f| unquote(f).to_owned()).collect();
        let targets = schema
            .targets
            .iter()
            .map(|t| {
                names
                    .iter()
                    .position(|n| t.names.contains(n))
                    .ok_or_else(|| {
                        Error::Data(format!(
                        "{source}: line 1: the header has no label column (expected one named {})",
                        t.names.join(" or ")
                    ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let features: Vec<Option<usize>> = schema
            .feature_names
            .iter()
            .map(|f| names.iter().position(|n| n == f))
            .collect();
        let missing: Vec<&str> = features
            .iter()
            .enumerate()
            .filter(|&(i, c)| c.is_none() && !schema.is_derived(i))
            .map(|(i, _)| schema.feature_names[i].as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Data(format!(
                "{source}: line 1: the header lacks feature column(s) {}",
                missing.join(", ")
            )));
        }
        Ok(Self {
            targets,
            features,
            width: names.len(),
            names,
            headerless: false,
        })
    }
}

/// Parses CSV lines from `reader` into `sink`; `source` names the file in errors.
pub fn parse(
    reader: impl BufRead,
    schema: &Schema,
    source: &str,
    sink: &mut RowSink,
) -> Result<()> {
    let mut columns: Option<Columns> = None;
    let mut row = vec![0f32; schema.feature_names.len()];
    super::for_each_line(reader, source, |number, text| {
        let fields: Vec<&str> = text.split(',').collect();
        let cols = match &columns {
            Some(c) => c,
            None => {
                let is_header = fields
                    .iter()
                    .any(|f| !unquote(f).is_empty() && unquote(f).parse::<f64>().is_err());
                if is_header {
                    columns = Some(Columns::from_header(&fields, schema, source)?);
                    return Ok(());
                }
                columns.insert(Columns::headerless(schema, source)?)
            }
        };
        push_line(&fields, cols, schema, &mut row, sink)
            .map_err(|m| Error::Data(format!("{source}: line {number}: {m}")))
    })
}

fn push_line(
    fields: &[&str],
    cols: &Columns,
    schema: &Schema,
    row: &mut [f32],
    sink: &mut RowSink,
) -> Result<(), String> {
    if fields.len() != cols.width {
        let layout = if cols.headerless {
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
    let empty = |i: usize| format!("column {} ('{}') is empty", i + 1, cols.names[i]);
    let value = |i: usize| -> Result<f64, String> {
        let raw = fields[i];
        if unquote(raw).is_empty() {
            return Err(empty(i));
        }
        super::number::parse(raw).map_err(|e| format!("column {} ('{}') {e}", i + 1, cols.names[i]))
    };
    for (k, &c) in cols.features.iter().enumerate() {
        if let Some(c) = c {
            row[k] = value(c)? as f32;
        }
    }
    schema.complete_row(row, |k| cols.features[k].is_some())?;
    let start = sink.labels.len();
    for (&c, target) in cols.targets.iter().zip(&schema.targets) {
        let raw = unquote(fields[c]);
        let label = if raw.is_empty() {
            Err(empty(c))
        } else {
            target.from_text(raw)
        };
        match label {
            Ok(y) => sink.labels.push(y),
            Err(e) => {
                sink.labels.truncate(start);
                return Err(e);
            }
        }
    }
    sink.features.extend_from_slice(row);
    sink.rows += 1;
    Ok(())
}
