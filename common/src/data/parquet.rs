//! Parquet training files (`application/x-parquet`), read one row group and one column at a time
//! (never the whole file). Columns must be flat numbers (boolean, 32/64-bit integers and
//! floats); a null is a missing value. The label is the column `label_column` names when the
//! file has one, else the first column (SageMaker's built-in XGBoost convention); with
//! `csv_weights`, the instance weight is the column named `weight`. Every other column is a
//! feature, named by the file's schema; later files are matched to the first by name.

use super::number;
use super::tabular::{Table, TabularOptions};
use crate::error::{Error, Result};
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::path::Path;

/// Records read per call into a column reader.
const BATCH: usize = 8192;

/// What a column is used for.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Label,
    Weight,
    /// Feature column `k` of the table.
    Feature(usize),
}

/// Reads one Parquet file into `table`; a corrupt file is an error (the reader's panics on
/// some corrupt files are contained), after which `table` is to be dropped.
pub fn read(path: &Path, options: &TabularOptions, source: &str, table: &mut Table) -> Result<()> {
    crate::contain::contained(|| read_file(path, options, source, table))
        .map_err(|why| Error::Data(format!("{source}: a corrupt Parquet file ({why})")))?
}

fn read_file(path: &Path, options: &TabularOptions, source: &str, table: &mut Table) -> Result<()> {
    let fail = |m: String| Error::Data(format!("{source}: {m}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| fail(format!("not a Parquet file this container reads: {e}")))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
    let unreadable: Vec<&String> = schema
        .columns()
        .iter()
        .zip(&names)
        .filter(|(c, _)| {
            c.max_rep_level() > 0
                || !matches!(
                    c.physical_type(),
                    parquet::basic::Type::BOOLEAN
                        | parquet::basic::Type::INT32
                        | parquet::basic::Type::INT64
                        | parquet::basic::Type::FLOAT
                        | parquet::basic::Type::DOUBLE
                )
        })
        .map(|(_, n)| n)
        .collect();
    if !unreadable.is_empty() {
        return Err(fail(format!(
            "{} column(s) are not flat numbers (boolean, integer, float): {}",
            unreadable.len(),
            unreadable
                .iter()
                .take(8)
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let label = names
        .iter()
        .position(|n| *n == options.label_column)
        .unwrap_or(0);
    let weight = if options.csv_weights {
        Some(names.iter().position(|n| n == "weight").ok_or_else(|| {
            fail("csv_weights is set but the file has no column named 'weight'".into())
        })?)
    } else {
        None
    };
    let feature_names: Vec<String> = (0..names.len())
        .filter(|&i| i != label && Some(i) != weight)
        .map(|i| names[i].clone())
        .collect();
    let order: Vec<usize> = match &table.names {
        // A later file (or channel): its features are put in the first one's order, by name.
        Some(first) => first
            .iter()
            .map(|n| feature_names.iter().position(|m| m == n))
            .collect::<Option<Vec<_>>>()
            .filter(|o| o.len() == feature_names.len())
            .ok_or_else(|| {
                fail(format!(
                    "the feature columns {feature_names:?} are not those of the first file read {first:?}"
                ))
            })?,
        None => {
            table.names = Some(feature_names.clone());
            (0..feature_names.len()).collect()
        }
    };
    table.set_width(feature_names.len()).map_err(fail)?;
    // Column index -> role; features land at the position the first file gave their name.
    let mut roles = vec![Role::Label; names.len()];
    let mut feature = 0;
    for (i, role) in roles.iter_mut().enumerate() {
        *role = if i == label {
            Role::Label
        } else if Some(i) == weight {
            Role::Weight
        } else {
            feature += 1;
            Role::Feature(
                order
                    .iter()
                    .position(|&o| o == feature - 1)
                    .expect("a permutation"),
            )
        };
    }
    let width = table.width;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| fail(e.to_string()))?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let first_row = table.rows();
        let start = table.features.len();
        table.features.resize(start + rows * width, f32::NAN);
        table.labels.resize(first_row + rows, f32::NAN);
        if weight.is_some() {
            table.weights.resize(first_row + rows, f32::NAN);
        }
        for (c, &role) in roles.iter().enumerate() {
            let max_def = schema.column(c).max_def_level();
            let column = group
                .get_column_reader(c)
                .map_err(|e| fail(e.to_string()))?;
            let mut put = |row: usize, value: Option<f64>| -> std::result::Result<(), String> {
                let at = first_row + row;
                let value = match value {
                    None if matches!(role, Role::Feature(_)) => f32::NAN,
                    None => {
                        return Err(format!(
                            "row {}: the {} is missing",
                            at + 1,
                            role_name(role)
                        ))
                    }
                    Some(v) => number::checked(v)
                        .map_err(|e| format!("row {}, column '{}': {e}", at + 1, names[c]))?
                        as f32,
                };
                match role {
                    Role::Label => table.labels[at] = value,
                    Role::Weight => table.weights[at] = value,
                    Role::Feature(k) => table.features[start + row * width + k] = value,
                }
                Ok(())
            };
            let read = match column {
                ColumnReader::BoolColumnReader(r) => {
                    drain(r, max_def, rows, |v| f64::from(u8::from(v)), &mut put)
                }
                ColumnReader::Int32ColumnReader(r) => drain(r, max_def, rows, f64::from, &mut put),
                ColumnReader::Int64ColumnReader(r) => {
                    drain(r, max_def, rows, |v| v as f64, &mut put)
                }
                ColumnReader::FloatColumnReader(r) => drain(r, max_def, rows, f64::from, &mut put),
                ColumnReader::DoubleColumnReader(r) => drain(r, max_def, rows, |v| v, &mut put),
                _ => unreachable!("checked above"),
            };
            read.map_err(fail)?;
        }
    }
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Label => "label",
        Role::Weight => "weight",
        Role::Feature(_) => "feature",
    }
}

/// Reads `rows` values of one column, calling `put(row, value)` (`None` for a null).
fn drain<T: parquet::data_type::DataType>(
    mut reader: parquet::column::reader::ColumnReaderImpl<T>,
    max_def: i16,
    rows: usize,
    to_f64: impl Fn(T::T) -> f64,
    put: &mut dyn FnMut(usize, Option<f64>) -> std::result::Result<(), String>,
) -> std::result::Result<(), String>
where
    T::T: Copy,
{
    let mut values: Vec<T::T> = Vec::with_capacity(BATCH);
    let mut levels: Vec<i16> = Vec::with_capacity(BATCH);
    let mut row = 0;
    while row < rows {
        values.clear();
        levels.clear();
        let (records, _, _) = reader
            .read_records(BATCH.min(rows - row), Some(&mut levels), None, &mut values)
            .map_err(|e| e.to_string())?;
        if records == 0 {
            return Err(format!(
                "the file ends after {row} of {rows} rows of a row group"
            ));
        }
        let mut next = values.iter();
        for r in 0..records {
            let present = max_def == 0 || levels.get(r) == Some(&max_def);
            let value = if present {
                Some(to_f64(
                    *next.next().ok_or("a column holds fewer values than rows")?,
                ))
            } else {
                None
            };
            put(row + r, value)?;
        }
        row += records;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parquet::data_type::{BoolType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    /// A file with a label, a float column with a null, an integer and a boolean column.
    pub(crate) fn sample(path: &Path, compression: parquet::basic::Compression) {
        let schema = parquet::schema::parser::parse_message_type(
            "message m { REQUIRED DOUBLE y; OPTIONAL DOUBLE a; REQUIRED INT64 b; OPTIONAL BOOLEAN c; }",
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).unwrap();
        let mut g = w.next_row_group().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[1.0, 2.0, 3.0], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[0.5, 1.5], Some(&[1, 0, 1]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<Int64Type>()
            .write_batch(&[7, 8, 9], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<BoolType>()
            .write_batch(&[true, false, true], Some(&[1, 1, 1]), None)
            .unwrap();
        c.close().unwrap();
        g.close().unwrap();
        w.close().unwrap();
    }

    fn options(label: &str) -> TabularOptions {
        TabularOptions {
            label_column: label.into(),
            csv_weights: false,
        }
    }

    #[test]
    fn columns_nulls_and_the_label_are_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        sample(&path, parquet::basic::Compression::SNAPPY);
        let mut t = Table::default();
        read(&path, &options("label"), "a.parquet", &mut t).unwrap();
        assert_eq!(t.labels, [1.0, 2.0, 3.0]);
        assert_eq!(t.names.as_deref().unwrap(), ["a", "b", "c"]);
        let f: Vec<String> = t.features.iter().map(|v| v.to_string()).collect();
        assert_eq!(f, ["0.5", "7", "1", "NaN", "8", "0", "1.5", "9", "1"]);
        // The label named by label_column, wherever it is; the first file's order for the next.
        let mut t = Table::default();
        read(&path, &options("b"), "a.parquet", &mut t).unwrap();
        assert_eq!(t.labels, [7.0, 8.0, 9.0]);
        assert_eq!(t.names.as_deref().unwrap(), ["y", "a", "c"]);
        let e = read(&path, &options("label"), "a.parquet", &mut t).unwrap_err();
        assert!(
            e.to_string().contains("are not those of the first file"),
            "{e}"
        );
    }
}
