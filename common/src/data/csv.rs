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

/// One value of a row: CSV text, or a typed value of a columnar file (Parquet).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    /// A CSV field as written (quotes removed when read).
    Text(&'a str),
    /// A number.
    Number(f64),
    /// No value (an empty CSV field reads as an empty text).
    Null,
}

/// Where each needed value sits in a line.
pub(crate) struct Columns {
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

    /// The columns of a header (or a columnar file's column names): features matched by name,
    /// labels by one of their names.
    pub(crate) fn from_header(fields: &[&str], schema: &Schema, source: &str) -> Result<Self> {
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

/// A CSV line's fields, split at `delimiter` outside double quotes (RFC 4180: `"Braund, Mr.
/// Owen",3` is two fields), each as written, quotes included ([`unquote`] reads them). A line
/// without quotes is split plainly.
pub fn fields(line: &str, delimiter: char) -> Vec<&str> {
    if !line.contains('"') {
        return line.split(delimiter).collect();
    }
    let mut fields = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in line.char_indices() {
        if c == '"' {
            // A doubled quote inside a quoted field toggles twice: the field goes on.
            quoted = !quoted;
        } else if c == delimiter && !quoted {
            fields.push(&line[start..i]);
            start = i + c.len_utf8();
        }
    }
    fields.push(&line[start..]);
    fields
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
        let fields = fields(text, ',');
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
        let fields: Vec<Field> = fields.into_iter().map(Field::Text).collect();
        push_row(&fields, cols, schema, &mut row, sink)
            .map_err(|m| Error::Data(format!("{source}: line {number}: {m}")))
    })
}

/// Checks one row's values and adds them to `sink` (`row` is scratch space, one per feature).
pub(crate) fn push_row(
    fields: &[Field],
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
        let located = |e: String| format!("column {} ('{}') {e}", i + 1, cols.names[i]);
        match fields[i] {
            Field::Text(raw) if !unquote(raw).is_empty() => {
                super::number::parse(raw).map_err(located)
            }
            Field::Number(v) => super::number::checked(v).map_err(located),
            _ => Err(empty(i)),
        }
    };
    for (k, &c) in cols.features.iter().enumerate() {
        if let Some(c) = c {
            row[k] = value(c)? as f32;
        }
    }
    schema.complete_row(row, |k| cols.features[k].is_some())?;
    let start = sink.labels.len();
    for (&c, target) in cols.targets.iter().zip(&schema.targets) {
        let label = match fields[c] {
            Field::Text(raw) if !unquote(raw).is_empty() => target.from_text(unquote(raw)),
            Field::Number(v) => target.from_number(v),
            _ => Err(empty(c)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_outside_quotes_only() {
        assert_eq!(fields("1,2,,3", ','), ["1", "2", "", "3"]);
        assert_eq!(
            fields(r#"1,"a, b","say ""hi, you""",4"#, ','),
            ["1", r#""a, b""#, r#""say ""hi, you""""#, "4"]
        );
        assert_eq!(fields("\"é\tx\"\t2", '\t'), ["\"é\tx\"", "2"]);
        // An unclosed quote keeps the rest of the line in its field.
        assert_eq!(fields("1,\"a,b", ','), ["1", "\"a,b"]);
    }
}
