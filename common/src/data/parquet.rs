//! Parquet training files (`application/x-parquet`), read a batch of rows at a time from each
//! row group (never the whole file). Columns must be flat: numbers (boolean, 32/64-bit integers
//! and floats) and, for the named labels of the fire and IOPS models, UTF-8 text; a null is a
//! missing value.
//!
//! - Columns from the data ([`read`], `model_kind=tabular` and `xgboost`): the label is the column
//!   `label_column` names when the file has one, else the first column (SageMaker's built-in
//!   XGBoost convention); with `csv_weights`, the weight is the column named `weight`; every
//!   other column is a numeric feature, named by the file's schema; later files are matched to
//!   the first by name.
//! - Named features ([`read_named`], the fire and IOPS models): the columns are matched to the
//!   model's features and labels by name, exactly as a CSV header is ([`super::csv`]).

use super::csv::{self, Field};
use super::tabular::{Table, TabularOptions};
use super::{number, RowSink, Schema};
use crate::error::{Error, Result};
use parquet::basic::Type as Physical;
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::path::Path;

/// Rows read from every column per batch, at most.
const BATCH: usize = 4096;

/// Cells held per batch, at most (32 bytes each): wide files read fewer rows at a time.
const BATCH_CELLS: usize = 1 << 20;

/// One value of a column.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Number(f64),
    Text(String),
    Null,
}

impl Cell {
    fn field(&self) -> Field<'_> {
        match self {
            Cell::Number(v) => Field::Number(*v),
            Cell::Text(t) => Field::Text(t),
            Cell::Null => Field::Null,
        }
    }
}

/// What [`ParquetFile::for_each_batch`] calls: the batch's first row and its cells by column.
type BatchFn<'a> = dyn FnMut(usize, &[Vec<Cell>]) -> std::result::Result<(), String> + 'a;

/// An open Parquet file and its column names.
struct ParquetFile {
    reader: SerializedFileReader<std::fs::File>,
    names: Vec<String>,
    /// Columns that hold a pandas DataFrame's index, not data ([`index_columns`]).
    index: Vec<usize>,
}

/// The columns pandas wrote for a DataFrame's index (`df.to_parquet()` keeps a non-default
/// index, such as what `train_test_split` leaves, as a column `__index_level_0__` or under its
/// name, listed in the file's `pandas` metadata): not features, as `pyarrow`'s `to_pandas()`,
/// which SageMaker's XGBoost reads Parquet with, makes them the index again.
fn index_columns(reader: &SerializedFileReader<std::fs::File>, names: &[String]) -> Vec<usize> {
    let listed: Vec<String> = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == "pandas"))
        .and_then(|e| e.value.as_deref())
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .and_then(|m| m.get("index_columns").cloned())
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    let unnamed = |n: &str| {
        n.strip_prefix("__index_level_")
            .and_then(|r| r.strip_suffix("__"))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    (0..names.len())
        .filter(|&i| unnamed(&names[i]) || listed.contains(&names[i]))
        .collect()
}

impl ParquetFile {
    /// Opens `path`; `text` allows UTF-8 text columns besides numbers.
    fn open(path: &Path, text: bool) -> std::result::Result<Self, String> {
        if super::files::is_gzip(path) {
            return Err("a gzip-compressed Parquet file: Parquet compresses its own pages, store it uncompressed".into());
        }
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| format!("not a Parquet file this container reads: {e}"))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
        let index = index_columns(&reader, &names);
        let unreadable: Vec<String> = schema
            .columns()
            .iter()
            .zip(&names)
            .enumerate()
            .filter(|(i, _)| !index.contains(i))
            .map(|(_, column)| column)
            .filter(|(c, _)| {
                let readable = match c.physical_type() {
                    Physical::BOOLEAN
                    | Physical::INT32
                    | Physical::INT64
                    | Physical::FLOAT
                    | Physical::DOUBLE => true,
                    Physical::BYTE_ARRAY => text,
                    _ => false,
                };
                c.max_rep_level() > 0 || !readable
            })
            .map(|(_, n)| format!("'{n}'"))
            .collect();
        if names.is_empty() {
            return Err("the file has no columns".into());
        }
        if !unreadable.is_empty() {
            return Err(format!(
                "{} column(s) are not flat {}: {}",
                unreadable.len(),
                if text {
                    "numbers or text"
                } else {
                    "numbers (boolean, integer, float)"
                },
                unreadable
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Self {
            reader,
            names,
            index,
        })
    }

    /// Calls `each(first_row, columns)` for every batch of rows, `columns[c]` holding column
    /// `c`'s cells of the batch.
    fn for_each_batch(&self, each: &mut BatchFn) -> std::result::Result<(), String> {
        let schema = self.reader.metadata().file_metadata().schema_descr_ptr();
        let mut first_row = 0;
        let batch = (BATCH_CELLS / self.names.len()).clamp(1, BATCH);
        let mut cells: Vec<Vec<Cell>> = vec![Vec::with_capacity(batch); self.names.len()];
        for g in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(g).map_err(|e| e.to_string())?;
            let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            let mut readers = (0..self.names.len())
                .map(|c| group.get_column_reader(c).map_err(|e| e.to_string()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let mut done = 0;
            while done < rows {
                let want = batch.min(rows - done);
                for (c, reader) in readers.iter_mut().enumerate() {
                    cells[c].clear();
                    let column = schema.column(c);
                    read_cells(reader, column.max_def_level(), want, &mut cells[c])?;
                    convert(&column, &mut cells[c]);
                    if cells[c].len() != want {
                        return Err(format!("column '{}' ends early", self.names[c]));
                    }
                }
                each(first_row + done, &cells)?;
                done += want;
            }
            first_row += rows;
        }
        Ok(())
    }
}

/// Applies a column's logical type to its raw numbers: decimals stored as integers are scaled
/// (12.34 is stored as 1234 with scale 2, as Spark writes them), unsigned integers read as such.
fn convert(column: &parquet::schema::types::ColumnDescriptor, cells: &mut [Cell]) {
    use parquet::basic::ConvertedType;
    let f: Box<dyn Fn(f64) -> f64> = match column.converted_type() {
        ConvertedType::DECIMAL if column.physical_type() != Physical::BYTE_ARRAY => {
            let scale = 10f64.powi(column.type_scale());
            Box::new(move |v| v / scale)
        }
        ConvertedType::UINT_32 => Box::new(|v| f64::from(v as i32 as u32)),
        ConvertedType::UINT_64 => Box::new(|v| (v as i64) as u64 as f64),
        _ => return,
    };
    for c in cells {
        if let Cell::Number(v) = c {
            *v = f(*v);
        }
    }
}

/// Reads `want` cells of one column.
fn read_cells(
    reader: &mut ColumnReader,
    max_def: i16,
    want: usize,
    out: &mut Vec<Cell>,
) -> std::result::Result<(), String> {
    match reader {
        ColumnReader::BoolColumnReader(r) => drain(r, max_def, want, out, |v| {
            Cell::Number(f64::from(u8::from(v)))
        }),
        ColumnReader::Int32ColumnReader(r) => {
            drain(r, max_def, want, out, |v| Cell::Number(f64::from(v)))
        }
        ColumnReader::Int64ColumnReader(r) => {
            drain(r, max_def, want, out, |v| Cell::Number(v as f64))
        }
        ColumnReader::FloatColumnReader(r) => {
            drain(r, max_def, want, out, |v| Cell::Number(f64::from(v)))
        }
        ColumnReader::DoubleColumnReader(r) => drain(r, max_def, want, out, Cell::Number),
        ColumnReader::ByteArrayColumnReader(r) => drain(r, max_def, want, out, |v| {
            Cell::Text(String::from_utf8_lossy(v.data()).into_owned())
        }),
        _ => Err("a column type this container does not read".into()),
    }
}

/// Reads `want` records of one typed column, nulls as [`Cell::Null`].
fn drain<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    max_def: i16,
    want: usize,
    out: &mut Vec<Cell>,
    cell: impl Fn(T::T) -> Cell,
) -> std::result::Result<(), String> {
    let mut values: Vec<T::T> = Vec::with_capacity(want);
    let mut levels: Vec<i16> = Vec::with_capacity(want);
    while out.len() < want {
        values.clear();
        levels.clear();
        let (records, _, _) = reader
            .read_records(want - out.len(), Some(&mut levels), None, &mut values)
            .map_err(|e| e.to_string())?;
        if records == 0 {
            return Err("a column holds fewer values than its row group's rows".into());
        }
        let mut next = values.drain(..);
        for r in 0..records {
            if max_def == 0 || levels.get(r) == Some(&max_def) {
                out.push(cell(
                    next.next().ok_or("a column holds fewer values than rows")?,
                ));
            } else {
                out.push(Cell::Null);
            }
        }
    }
    Ok(())
}

/// Runs `read` on an open file; a corrupt file is an error (the reader's panics on some corrupt
/// files are contained), after which what was read into is to be dropped.
fn contained_read(
    path: &Path,
    source: &str,
    text: bool,
    read: impl FnOnce(&ParquetFile) -> std::result::Result<(), String>,
) -> Result<()> {
    crate::contain::contained(|| ParquetFile::open(path, text).and_then(|f| read(&f)))
        .map_err(|why| {
            format!("the Parquet reader failed on this file, which is likely corrupt ({why})")
        })
        .and_then(|r| r)
        .map_err(|m| Error::Data(format!("{source}: {m}")))
}

/// Reads one Parquet file with named features (the fire and IOPS models) into `sink`.
pub fn read_named(path: &Path, schema: &Schema, source: &str, sink: &mut RowSink) -> Result<()> {
    contained_read(path, source, true, |file| {
        let names: Vec<&str> = file.names.iter().map(String::as_str).collect();
        let columns =
            csv::Columns::from_header(&names, schema, source).map_err(|e| e.to_string())?;
        let mut row = vec![0f32; schema.feature_names.len()];
        file.for_each_batch(&mut |first_row, cells| {
            let mut fields: Vec<Field> = Vec::with_capacity(cells.len());
            for r in 0..cells.first().map_or(0, Vec::len) {
                fields.clear();
                fields.extend(cells.iter().map(|c| c[r].field()));
                csv::push_row(&fields, &columns, schema, &mut row, sink)
                    .map_err(|m| format!("row {}: {m}", first_row + r + 1))?;
            }
            Ok(())
        })
    })
}

/// What a column is used for.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Label,
    Weight,
    /// A pandas index column: skipped.
    Index,
    /// Feature column `k` of the table.
    Feature(usize),
}

/// Reads one Parquet file whose columns come from the data into `table`.
pub fn read(path: &Path, options: &TabularOptions, source: &str, table: &mut Table) -> Result<()> {
    contained_read(path, source, false, |file| read_table(file, options, table))
}

fn read_table(
    file: &ParquetFile,
    options: &TabularOptions,
    table: &mut Table,
) -> std::result::Result<(), String> {
    let names = &file.names;
    let label = names
        .iter()
        .position(|n| *n == options.label_column)
        .unwrap_or(0);
    let weight = if options.csv_weights {
        Some(
            names
                .iter()
                .position(|n| n == "weight")
                .ok_or("csv_weights is set but the file has no column named 'weight'")?,
        )
    } else {
        None
    };
    let feature_names: Vec<String> = (0..names.len())
        .filter(|&i| i != label && Some(i) != weight && !file.index.contains(&i))
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
                format!(
                    "the feature columns {feature_names:?} are not those of the first file read {first:?}"
                )
            })?,
        None => {
            table.names = Some(feature_names.clone());
            (0..feature_names.len()).collect()
        }
    };
    table.set_width(feature_names.len())?;
    // Column index -> role; features land at the position the first file gave their name.
    let mut feature = 0;
    let roles: Vec<Role> = (0..names.len())
        .map(|i| {
            if i == label {
                Role::Label
            } else if Some(i) == weight {
                Role::Weight
            } else if file.index.contains(&i) {
                Role::Index
            } else {
                feature += 1;
                Role::Feature(
                    order
                        .iter()
                        .position(|&o| o == feature - 1)
                        .expect("a permutation"),
                )
            }
        })
        .collect();
    let width = table.width;
    file.for_each_batch(&mut |first_row, cells| {
        let rows = cells.first().map_or(0, Vec::len);
        let start = table.features.len();
        table.features.resize(start + rows * width, f32::NAN);
        for (c, &role) in roles.iter().enumerate() {
            if role == Role::Index {
                continue;
            }
            for (r, cell) in cells[c].iter().enumerate() {
                let value = match cell {
                    // NaN in a feature column is a missing value, as `NaN` in a CSV field (Spark
                    // and Polars write NaN where pandas writes null).
                    Cell::Number(v) if v.is_nan() && matches!(role, Role::Feature(_)) => f32::NAN,
                    Cell::Number(v) => number::checked(*v).map_err(|e| {
                        format!("row {}, column '{}': {e}", first_row + r + 1, names[c])
                    })? as f32,
                    Cell::Null if matches!(role, Role::Feature(_)) => f32::NAN,
                    _ => {
                        let what = if role == Role::Label {
                            "label"
                        } else {
                            "weight"
                        };
                        return Err(format!("row {}: the {what} is missing", first_row + r + 1));
                    }
                };
                match role {
                    Role::Label => table.labels.push(value),
                    Role::Weight => table.weights.push(value),
                    Role::Feature(k) => table.features[start + r * width + k] = value,
                    Role::Index => unreachable!("skipped above"),
                }
            }
        }
        Ok(())
    })
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
            delimiter: None,
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

    #[test]
    fn nan_is_a_missing_feature_and_a_refused_label() {
        let write = |path: &Path, y: [f64; 2], a: [f64; 2]| {
            let schema = "message m { REQUIRED DOUBLE y; REQUIRED DOUBLE a; }";
            let schema = parquet::schema::parser::parse_message_type(schema).unwrap();
            let file = std::fs::File::create(path).unwrap();
            let props = Arc::new(WriterProperties::builder().build());
            let mut w = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
            let mut g = w.next_row_group().unwrap();
            for values in [y, a] {
                let mut c = g.next_column().unwrap().unwrap();
                c.typed::<DoubleType>()
                    .write_batch(&values, None, None)
                    .unwrap();
                c.close().unwrap();
            }
            g.close().unwrap();
            w.close().unwrap();
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(&path, [1.0, 0.0], [f64::NAN, 2.0]);
        let mut t = Table::default();
        read(&path, &options("y"), "a.parquet", &mut t).unwrap();
        assert!(t.features[0].is_nan() && t.features[1] == 2.0);
        write(&path, [f64::NAN, 0.0], [1.0, 2.0]);
        let e = read(&path, &options("y"), "a.parquet", &mut Table::default()).unwrap_err();
        assert!(e.to_string().contains("row 1, column 'y'"), "{e}");
    }

    #[test]
    fn named_columns_are_matched_as_a_csv_header_is() {
        use parquet::data_type::ByteArrayType;
        let schema = crate::data::Schema {
            feature_names: vec!["a".into(), "b".into()],
            derived: None,
            targets: vec![crate::data::Target {
                names: vec!["label".into(), "fire_detected".into()],
                kind: crate::data::TargetKind::Binary,
            }],
            allow_missing: false,
            categories: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, message: &str, labels: &[i64], b: Option<&[i16]>| {
            let path = dir.path().join(name);
            let schema = parquet::schema::parser::parse_message_type(message).unwrap();
            let file = std::fs::File::create(&path).unwrap();
            let mut w =
                SerializedFileWriter::new(file, Arc::new(schema), Default::default()).unwrap();
            let mut g = w.next_row_group().unwrap();
            let mut c = g.next_column().unwrap().unwrap();
            let (values, defs): (&[f64], _) = match b {
                Some(defs) => (&[2.0], Some(defs)),
                None => (&[2.0, 4.0], None),
            };
            c.typed::<DoubleType>()
                .write_batch(values, defs, None)
                .unwrap();
            c.close().unwrap();
            let mut c = g.next_column().unwrap().unwrap();
            c.typed::<Int64Type>()
                .write_batch(labels, None, None)
                .unwrap();
            c.close().unwrap();
            let mut c = g.next_column().unwrap().unwrap();
            c.typed::<DoubleType>()
                .write_batch(&[1.0, 3.0], None, None)
                .unwrap();
            c.close().unwrap();
            let mut c = g.next_column().unwrap().unwrap();
            let text = ["x".into(), "y".into()];
            c.typed::<ByteArrayType>()
                .write_batch(&text, None, None)
                .unwrap();
            c.close().unwrap();
            g.close().unwrap();
            w.close().unwrap();
            path
        };
        // Columns in another order, an extra text column ignored: the CSV header's rules.
        let m = "message m { REQUIRED DOUBLE b; REQUIRED INT64 fire_detected; REQUIRED DOUBLE a; REQUIRED BINARY note (UTF8); }";
        let mut sink = RowSink::default();
        read_named(
            &write("ok.parquet", m, &[0, 1], None),
            &schema,
            "ok.parquet",
            &mut sink,
        )
        .unwrap();
        assert_eq!(sink.features, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(sink.labels, [0.0, 1.0]);
        // A label that is not 0/1 and a null feature fail with the row, as in CSV.
        let e = read_named(
            &write("bad.parquet", m, &[0, 2], None),
            &schema,
            "bad.parquet",
            &mut RowSink::default(),
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("bad.parquet: row 2: label 2 is not 0 or 1"));
        let nullable = "message m { OPTIONAL DOUBLE b; REQUIRED INT64 label; REQUIRED DOUBLE a; REQUIRED BINARY note (UTF8); }";
        let e = read_named(
            &write("null.parquet", nullable, &[0, 1], Some(&[1, 0])),
            &schema,
            "null.parquet",
            &mut RowSink::default(),
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("row 2: column 1 ('b') is empty"));
        let e = read_named(&write("no.parquet", "message m { REQUIRED DOUBLE b; REQUIRED INT64 label; REQUIRED DOUBLE c; REQUIRED BINARY note (UTF8); }", &[0, 1], None), &schema, "no.parquet", &mut RowSink::default());
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("lacks feature column(s) a"));
    }

    #[test]
    fn decimals_are_scaled_and_gzip_is_named() {
        use parquet::data_type::Int32Type;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let schema = parquet::schema::parser::parse_message_type(
            "message m { REQUIRED INT32 label; REQUIRED INT32 price (DECIMAL(5,2)); }",
        )
        .unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let mut w = SerializedFileWriter::new(file, Arc::new(schema), Default::default()).unwrap();
        let mut g = w.next_row_group().unwrap();
        for values in [[0, 1], [1234, -5]] {
            let mut c = g.next_column().unwrap().unwrap();
            c.typed::<Int32Type>()
                .write_batch(&values, None, None)
                .unwrap();
            c.close().unwrap();
        }
        g.close().unwrap();
        w.close().unwrap();
        let mut t = Table::default();
        read(&path, &options("label"), "d.parquet", &mut t).unwrap();
        assert_eq!(t.features, [12.34, -0.05]);
        let gz = dir.path().join("d.parquet.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        std::io::Write::write_all(&mut e, &std::fs::read(&path).unwrap()).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        let err = read(
            &gz,
            &options("label"),
            "d.parquet.gz",
            &mut Table::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("a gzip-compressed Parquet file"),
            "{err}"
        );
    }
}
