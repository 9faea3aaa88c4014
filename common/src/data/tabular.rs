//! Generic tabular training data (`model_kind=tabular`): the columns come from the data.
//!
//! Formats, per file (the channel's ContentType, else the content):
//! - CSV without a header (SageMaker's built-in convention): the label in column 0, with
//!   `csv_weights` an instance weight in column 1, then the features;
//! - CSV with a header: the label column named by `label_column` (and a `weight` column with
//!   `csv_weights`), every other column a feature, in header order;
//! - JSON Lines: `{"features": [..], "label": y, "weight": w}` (weight optional);
//! - Parquet: flat numeric columns, the label named `label_column` or else the first
//!   ([`super::parquet`]);
//! - RecordIO-protobuf (SageMaker's `Record`s): the `label` map's `values`, and the features
//!   as a dense or sparse `values` tensor (no weights);
//! - libsvm: `label[:weight] [qid:q] index:value ...`, column `index` (0-based, as XGBoost reads
//!   it); the weight is taken with or without `csv_weights`, as XGBoost's reader takes it (rows
//!   without one weigh 1 once any has one); `qid` is a ranking query id, given on every row or
//!   none.
//!
//! An empty CSV field, a `null` in JSON, a marker pandas reads as missing (`NA`, `NaN`, `null`,
//! ...), or an index absent from a libsvm line is a missing value (NaN), which XGBoost handles
//! natively. Every row of a CSV or JSON Lines source must have the width of the first; libsvm
//! rows are as wide as the largest index seen in the job.
//!
//! Text in CSV and JSON Lines: a feature column of the train channel holding any text is
//! categorical, and a label column holding any text holds class names ([`super::categories`]);
//! later channels are read with the train channel's categories (a category it never held is
//! missing, and counted in the log), and text in a column that is numeric in the train channel
//! is an error naming every such column of the file.

use super::categories::{self, CategoryBuilder, Encoding, NotCategories};
use super::{files, number, Dataset};
use crate::error::{Error, Result};
use ndarray::{Array1, Array2};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// How labels and weights are found.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularOptions {
    /// The label's column name in a CSV header (and JSON field name).
    pub label_column: String,
    /// Whether rows carry an instance weight (CSV column 1 without a header, `weight` otherwise).
    pub csv_weights: bool,
    /// The CSV field separator; `None` detects it per file ([`detect_delimiter`]).
    pub delimiter: Option<char>,
}

/// The separators [`detect_delimiter`] chooses among, in order of preference on a tie.
pub const DELIMITERS: [(char, &str); 4] = [
    (',', "comma"),
    ('\t', "tab"),
    (';', "semicolon"),
    ('|', "pipe"),
];

/// A CSV file's separator from its first line: comma whenever one occurs there outside double
/// quotes (so no comma file is read otherwise), else the candidate of [`DELIMITERS`] occurring
/// most often, comma when none occurs.
pub fn detect_delimiter(first_line: &str) -> char {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for c in first_line.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(k) = DELIMITERS.iter().position(|d| d.0 == c) {
                counts[k] += 1;
            }
        }
    }
    if counts[0] > 0 {
        return ',';
    }
    let best = (0..DELIMITERS.len()).fold(0, |b, k| if counts[k] > counts[b] { k } else { b });
    DELIMITERS[best].0
}

/// Rows of one channel: features row-major, `width` per row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Features, `width` values per row, NaN = missing.
    pub features: Vec<f32>,
    /// Values per row.
    pub width: usize,
    /// One label per row.
    pub labels: Vec<f32>,
    /// One weight per row, when the data has weights.
    pub weights: Vec<f32>,
    /// One query id per row, when libsvm rows carry `qid:` (all of them or none).
    pub query_ids: Vec<u32>,
    /// Column names from a CSV header, when there was one.
    pub names: Option<Vec<String>>,
    /// The categorical features and text labels: the train channel's, once read to the end
    /// ([`Table::finish_text`]); given up front for a later channel ([`Table::like`]).
    pub encoding: Encoding,
    /// How text is read into codes.
    text: TextColumns,
    /// The file and line being read, for messages.
    source: String,
    line: usize,
    /// Whether the width was fixed by a dense source (CSV, JSON Lines).
    fixed_width: bool,
}

/// How a table reads text values.
#[derive(Debug, Clone)]
enum TextColumns {
    /// The train channel: any column may turn out to hold text; its names are gathered here.
    Learn {
        features: BTreeMap<usize, CategoryBuilder>,
        label: Option<CategoryBuilder>,
    },
    /// A later channel: the train channel's categories ([`Table::encoding`]); per feature, how
    /// many values were categories it did not hold.
    Given { unseen: BTreeMap<usize, usize> },
}

impl Default for TextColumns {
    fn default() -> Self {
        Self::Learn {
            features: BTreeMap::new(),
            label: None,
        }
    }
}

impl Table {
    /// An empty table for a channel read after `train`: the train channel's header names and
    /// text columns.
    pub fn like(names: Option<Vec<String>>, encoding: Encoding) -> Self {
        Self {
            names,
            encoding,
            text: TextColumns::Given {
                unseen: BTreeMap::new(),
            },
            ..Self::default()
        }
    }

    /// The value of feature `k` from a field's (unquoted) text: a number, a missing value, or a
    /// category's code; `None` for text in a column a later channel must read as numbers.
    fn feature_value(&mut self, k: usize, text: &str) -> Option<f32> {
        let row = self.rows();
        let at = || format!("{} line {}", self.source, self.line);
        match &mut self.text {
            TextColumns::Given { unseen } => {
                if let Some(c) = self.encoding.feature(k) {
                    let v = c.value_of_text(text);
                    if categories::is_unseen(v) {
                        *unseen.entry(k).or_default() += 1;
                    }
                    return Some(v);
                }
            }
            TextColumns::Learn { features, .. } => {
                if let Some(b) = features.get_mut(&k) {
                    return Some(b.value_of_text(text, at));
                }
            }
        }
        if categories::is_missing(text) {
            return Some(f32::NAN);
        }
        if let Ok(v) = number::parse(text) {
            return Some(v as f32);
        }
        match &mut self.text {
            TextColumns::Learn { features, .. } if text.parse::<f64>().is_err() => Some(
                features
                    .entry(k)
                    .or_insert_with(|| CategoryBuilder::new(row))
                    .value_of_text(text, at),
            ),
            _ => None,
        }
    }

    /// The label from a field's (unquoted) text: a number, or a class's code when the labels are
    /// text.
    fn label_of_text(&mut self, text: &str) -> Result<f32, String> {
        let row = self.rows();
        if categories::is_missing(text) {
            return Err("the label is missing".into());
        }
        if let TextColumns::Given { .. } = self.text {
            if let Some(classes) = &self.encoding.classes {
                let name = categories::name_of(text);
                return classes.code(&name).map(|c| c as f32).ok_or_else(|| {
                    format!(
                        "the label \"{name}\" is not among the train channel's classes ({})",
                        categories::shown(classes.names())
                    )
                });
            }
        }
        let at = || format!("{} line {}", self.source, self.line);
        match (&mut self.text, number::parse(text)) {
            (TextColumns::Learn { label: Some(b), .. }, _) => Ok(b.value_of_text(text, at)),
            (_, Ok(v)) => Ok(v as f32),
            (TextColumns::Learn { label, .. }, Err(_)) if text.parse::<f64>().is_err() => Ok(label
                .insert(CategoryBuilder::new(row))
                .value_of_text(text, at)),
            (_, Err(e)) => Err(format!("the label {e}")),
        }
    }

    /// The label from a JSON value: a number or a string.
    fn label_of_json(&mut self, v: &serde_json::Value) -> Result<f32, String> {
        match v {
            serde_json::Value::String(s) => self.label_of_text(s),
            serde_json::Value::Number(n) => {
                let x = number::checked(n.as_f64().unwrap_or(f64::NAN))
                    .map_err(|e| format!("the label {e}"))?;
                self.label_of_text(&categories::number_name(x as f32))
            }
            other => Err(format!(
                "the label is not a number or a class name: {other}"
            )),
        }
    }

    /// Ends reading the train channel: text columns become categories sorted by name (codes
    /// rewritten), text labels classes. A later channel's table logs the categories it read as
    /// missing.
    pub fn finish_text(&mut self, channel: &str) -> Result<()> {
        let text = std::mem::replace(
            &mut self.text,
            TextColumns::Given {
                unseen: BTreeMap::new(),
            },
        );
        let (features, label) = match text {
            TextColumns::Given { unseen } => {
                for (k, count) in unseen {
                    tracing::warn!(channel, column = %self.feature_name(k), count, "values that are categories the train channel does not hold: read as missing");
                }
                return Ok(());
            }
            TextColumns::Learn { features, label } => (features, label),
        };
        let width = self.width;
        let mut problems = Vec::new();
        for (k, builder) in features {
            let name = format!("column '{}'", self.feature_name(k));
            let column = self.features.iter_mut().skip(k).step_by(width.max(1));
            match builder.finish(column) {
                Ok(c) => {
                    if self.encoding.features.len() <= k {
                        self.encoding.features.resize(k + 1, None);
                    }
                    tracing::info!(channel, %name, categories = c.len(), "text column read as categorical");
                    self.encoding.features[k] = Some(c);
                }
                Err(e) => problems.push(not_categories(&name, e)),
            }
        }
        if let Some(builder) = label {
            match builder.finish(self.labels.iter_mut()) {
                Ok(c) => {
                    tracing::info!(channel, classes = %categories::shown(c.names()), "the labels are class names");
                    self.encoding.classes = Some(c);
                }
                Err(e) => problems.push(not_categories("the label", e)),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Data(format!(
                "channel '{channel}': {} column(s) cannot be read: {} (a column holding at least as much text as numbers is categorical; empty or NA means missing)",
                problems.len(),
                problems.join("; ")
            )));
        }
        Ok(())
    }

    /// Whether any column holds text: categorical features or class names, learned so far or
    /// given by the train channel.
    fn has_text(&self) -> bool {
        match &self.text {
            TextColumns::Learn { features, label } => !features.is_empty() || label.is_some(),
            TextColumns::Given { .. } => {
                self.encoding.has_categorical() || self.encoding.classes.is_some()
            }
        }
    }

    /// Whether feature `k` is known to hold categories.
    fn is_categorical(&self, k: usize) -> bool {
        match &self.text {
            TextColumns::Given { .. } => self.encoding.feature(k).is_some(),
            TextColumns::Learn { features, .. } => features.contains_key(&k),
        }
    }

    /// Feature `k`'s name, for messages.
    fn feature_name(&self, k: usize) -> String {
        self.names
            .as_ref()
            .and_then(|n| n.get(k).cloned())
            .unwrap_or_else(|| format!("f{k}"))
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Widens every row to `width` columns, the new ones missing.
    pub fn widen(&mut self, width: usize) {
        if width <= self.width {
            return;
        }
        let rows = self.rows();
        let mut wider = vec![f32::NAN; rows * width];
        for r in 0..rows {
            wider[r * width..r * width + self.width]
                .copy_from_slice(&self.features[r * self.width..(r + 1) * self.width]);
        }
        self.features = wider;
        self.width = width;
    }

    /// Fixes the width of dense rows (the first dense source), or checks it.
    pub(crate) fn set_width(&mut self, width: usize) -> Result<(), String> {
        if self.rows() == 0 && !self.fixed_width {
            self.width = width;
            self.fixed_width = true;
            return Ok(());
        }
        if width != self.width {
            return Err(format!(
                "{width} features, but earlier rows have {}",
                self.width
            ));
        }
        Ok(())
    }

    /// Whether the width came from CSV or JSON rows (so it cannot be widened silently).
    pub fn is_dense(&self) -> bool {
        self.fixed_width
    }

    /// The rows as a dataset; features are named by the CSV header, else `f0`, `f1`, ...
    pub fn into_dataset(self) -> Dataset {
        let names = self
            .names
            .clone()
            .filter(|n| n.len() == self.width)
            .unwrap_or_else(|| (0..self.width).map(|i| format!("f{i}")).collect());
        let rows = self.rows();
        let mut weights = self.weights;
        if !weights.is_empty() {
            // Rows read before the first weighted one (another file's) weigh 1.
            weights.resize(rows, 1.0);
        }
        Dataset {
            features: Array2::from_shape_vec((rows, self.width), self.features)
                .expect("width values per row"),
            targets: vec![Array1::from(self.labels)],
            feature_names: names,
            encoding: self.encoding,
            weights: (!weights.is_empty()).then(|| Array1::from(weights)),
            absent_is_zero: !self.fixed_width,
            query_ids: (!self.query_ids.is_empty()).then(|| Array1::from(self.query_ids)),
        }
    }
}

/// A tabular file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabularFormat {
    /// Comma-separated values.
    Csv,
    /// One JSON object per line.
    JsonLines,
    /// `label index:value ...`.
    Libsvm,
    /// SageMaker's RecordIO-wrapped protobuf `Record`s (label and `values` tensors).
    RecordIo,
    /// Apache Parquet: flat numeric columns.
    Parquet,
}

impl TabularFormat {
    /// The format a ContentType names, or `None` for one this loader does not read.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match super::media_type_essence(content_type).as_str() {
            "text/csv"
            | "csv"
            | "application/csv"
            | "text/x-csv"
            | "text/tab-separated-values"
            | "tsv" => Some(Self::Csv),
            "application/jsonlines"
            | "application/x-jsonlines"
            | "application/jsonl"
            | "application/x-ndjson"
            | "application/json"
            | "jsonl" => Some(Self::JsonLines),
            "text/libsvm" | "text/x-libsvm" | "application/x-libsvm" | "libsvm" => {
                Some(Self::Libsvm)
            }
            "application/x-recordio-protobuf" | "recordio-protobuf" => Some(Self::RecordIo),
            "application/x-parquet" | "application/parquet" | "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The format of a file from its first non-blank line: `{` is JSON Lines; a label then
    /// only `index:value` tokens (whole-number index or `qid`, numeric value; a `#` comment
    /// after them) without commas libsvm; anything else CSV (a tab-separated row with a time
    /// such as `10:00:00` in it is no libsvm).
    pub fn sniff(first_line: &str) -> Self {
        let line = first_line.trim();
        let pair = |t: &str| {
            t.split_once(':').is_some_and(|(i, v)| {
                (i == "qid" || (!i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())))
                    && v.parse::<f64>().is_ok()
            })
        };
        let mut tokens = line
            .split_whitespace()
            .skip(1)
            .take_while(|t| !t.starts_with('#'))
            .peekable();
        if line.starts_with('{') {
            Self::JsonLines
        } else if !line.contains(',') && tokens.peek().is_some() && tokens.all(pair) {
            Self::Libsvm
        } else {
            Self::Csv
        }
    }
}

/// What a channel read after `train` takes from it: its CSV header's feature names and its text
/// columns.
#[derive(Debug, Clone, Copy)]
pub struct TrainColumns<'a> {
    /// The train channel's feature names from its CSV header, when it had one.
    pub header: Option<&'a [String]>,
    /// Its categorical features and class names.
    pub encoding: &'a Encoding,
}

/// Loads every file of a channel directory into one table. With `train` (a later channel), the
/// columns of every file with a CSV header are matched to the train channel's by name (a file
/// without a header is taken by position) and text is read with its categories; without it,
/// the channel's first header is the one and text columns become categories.
pub fn load_channel(
    dir: &Path,
    channel: &str,
    content_type: Option<&str>,
    options: &TabularOptions,
    train: Option<TrainColumns>,
    stop: &dyn Fn() -> Result<()>,
) -> Result<Table> {
    // Tab-separated by its ContentType: tabs, not guessed.
    let tsv = content_type.is_some_and(|ct| {
        ["text/tab-separated-values", "tsv"].contains(&super::media_type_essence(ct).as_str())
    });
    let tsv_options;
    let options = if tsv && options.delimiter.is_none() {
        tsv_options = TabularOptions {
            delimiter: Some('\t'),
            ..options.clone()
        };
        &tsv_options
    } else {
        options
    };
    let declared = content_type
        .map(|ct| {
            TabularFormat::from_content_type(ct).ok_or_else(|| {
                Error::Config(format!(
                    "ContentType '{ct}' is not supported; use text/csv, application/jsonlines, text/libsvm, application/x-parquet or application/x-recordio-protobuf"
                ))
            })
        })
        .transpose()?;
    let mut table = match train {
        Some(t) => Table::like(t.header.map(<[String]>::to_vec), t.encoding.clone()),
        None => Table::default(),
    };
    let list = files::data_files(dir, channel)?;
    let mut numbers_only = None;
    for file in &list {
        stop()?;
        let (mut reader, name) = files::open(dir, file)?;
        let format = match declared {
            Some(f) => f,
            None => {
                let buf = reader.fill_buf().map_err(|e| Error::io(file, e))?;
                if buf.starts_with(&super::recordio::MAGIC.to_le_bytes()) {
                    TabularFormat::RecordIo
                } else if buf.starts_with(b"PAR1") {
                    TabularFormat::Parquet
                } else {
                    let text = String::from_utf8_lossy(&buf[..buf.len().min(64 * 1024)]);
                    TabularFormat::sniff(text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""))
                }
            }
        };
        if format == TabularFormat::Parquet {
            // Read by row group and column from the file itself.
            drop(reader);
            super::parquet::read(file, options, &name, &mut table)?;
        } else {
            parse(reader, format, options, &name, &mut table)?;
        }
        tracing::info!(channel, file = %name, ?format, rows_so_far = table.rows(), width = table.width, "loaded data file");
        if !matches!(format, TabularFormat::Csv | TabularFormat::JsonLines) {
            numbers_only.get_or_insert(name);
        }
    }
    // Text columns are coded from names: a format of numbers alone would put raw numbers where
    // codes belong.
    if let Some(file) = numbers_only.filter(|_| table.has_text()) {
        return Err(Error::Data(format!(
            "channel '{channel}': {file} holds numbers only, but the table has text columns or text labels (read from CSV or JSON Lines, or the train channel's); give every file of a table with text as CSV or JSON Lines"
        )));
    }
    if table.rows() == 0 {
        return Err(Error::Data(format!(
            "channel '{channel}' holds no data rows in its {} file(s)",
            list.len()
        )));
    }
    table.finish_text(channel)?;
    if !table.query_ids.is_empty() && table.query_ids.len() != table.rows() {
        return Err(Error::Data(format!(
            "channel '{channel}': some files' rows have a libsvm qid: and others not; give every row of a ranking job its query id"
        )));
    }
    Ok(table)
}

/// Parses one source into `table`.
pub fn parse(
    reader: impl BufRead,
    format: TabularFormat,
    options: &TabularOptions,
    source: &str,
    table: &mut Table,
) -> Result<()> {
    if format == TabularFormat::RecordIo {
        return parse_recordio(reader, options, source, table);
    }
    table.source = source.to_owned();
    let mut header: Option<CsvHeader> = None;
    let mut first = true;
    let mut delimiter = options.delimiter;
    let mut problems = NonNumeric::default();
    super::for_each_line(reader, source, |number, text| {
        let located = |m: String| Error::Data(format!("{source}: line {number}: {m}"));
        table.line = number;
        match format {
            TabularFormat::Csv => {
                let d = *delimiter.get_or_insert_with(|| detect_delimiter(text));
                let fields = super::csv::fields(text, d);
                if first {
                    first = false;
                    if is_header(&fields, options) {
                        let mut h = CsvHeader::new(&fields, options).map_err(located)?;
                        match &table.names {
                            // A later file of the channel: its columns are matched by name.
                            Some(names) => h.order_as(names).map_err(located)?,
                            None => table.names = Some(h.feature_names.clone()),
                        }
                        header = Some(h);
                        return Ok(());
                    }
                }
                csv_row(
                    &fields,
                    header.as_ref(),
                    options,
                    table,
                    number,
                    &mut problems,
                )
                .map_err(located)
            }
            TabularFormat::JsonLines => {
                json_row(text, options, table, number, &mut problems).map_err(located)
            }
            TabularFormat::Libsvm => libsvm_row(text, table).map_err(located),
            TabularFormat::RecordIo | TabularFormat::Parquet => unreachable!("read elsewhere"),
        }
    })?;
    problems.into_result(source)
}

/// Why a text column of the train channel is not categorical, in one phrase.
fn not_categories(name: &str, e: NotCategories) -> String {
    match e {
        NotCategories::TooMany => format!(
            "{name} holds more than the {} different texts a categorical column may have (an identifier or free text: drop it)",
            categories::MAX_CATEGORIES
        ),
        NotCategories::DecimalCommas { first: (value, at) } => format!(
            "{name} holds numbers with decimal commas, first \"{value}\" ({at}); write them with a decimal point, or set csv_delimiter if the comma separates fields"
        ),
        NotCategories::MostlyNumbers {
            numbers,
            texts,
            first: (value, at),
        } => format!(
            "{name} holds {texts} text value(s) among {numbers} numbers, first \"{value}\" ({at})"
        ),
    }
}

/// Whether a CSV file's first line is a header: it names the label column, or none of its
/// fields is a number or a missing marker (a data row of a table with text columns has numbers
/// or missing values in it too; an empty field is a header's unnamed index column).
fn is_header(fields: &[&str], options: &TabularOptions) -> bool {
    let texts = || fields.iter().map(|f| number::unquote(f));
    texts().any(|t| t == options.label_column)
        || texts()
            .all(|t| t.parse::<f64>().is_err() && (t.is_empty() || !categories::is_missing(t)))
}

/// The feature columns of a file that hold values other than numbers, gathered over the whole
/// file so that one message names them all.
#[derive(Default)]
struct NonNumeric {
    /// Column index -> (its name, how many values, first line, first value).
    columns: std::collections::BTreeMap<usize, (Option<String>, usize, usize, String)>,
}

impl NonNumeric {
    fn add(&mut self, column: usize, name: Option<&String>, line: usize, value: &str) {
        let entry = self
            .columns
            .entry(column)
            .or_insert_with(|| (name.cloned(), 0, line, value.chars().take(40).collect()));
        entry.1 += 1;
    }

    fn into_result(self, source: &str) -> Result<()> {
        if self.columns.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = self
            .columns
            .iter()
            .take(8)
            .map(|(&c, (name, count, line, value))| {
                let name = name.as_ref().map(|n| format!(" '{n}'")).unwrap_or_default();
                format!(
                    "column {}{name}: {count} value(s), first \"{value}\" on line {line}",
                    c + 1
                )
            })
            .collect();
        let more = self.columns.len().saturating_sub(8);
        Err(Error::Data(format!(
            "{source}: {} column(s) hold text where the train channel's hold numbers (empty or NA means missing): {}{}",
            self.columns.len(),
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )))
    }
}

/// Column roles from a CSV header.
struct CsvHeader {
    label: usize,
    weight: Option<usize>,
    features: Vec<usize>,
    feature_names: Vec<String>,
}

impl CsvHeader {
    /// Orders this file's feature columns as `names` (the train channel's header, or the
    /// channel's first) by name; the same names must be there, in any order.
    fn order_as(&mut self, names: &[String]) -> Result<(), String> {
        if self.feature_names == names {
            return Ok(());
        }
        let position = |n: &String| self.feature_names.iter().position(|m| m == n);
        let order: Option<Vec<usize>> = names
            .iter()
            .map(|n| position(n).map(|i| self.features[i]))
            .collect();
        match order.filter(|_| names.len() == self.feature_names.len()) {
            Some(features) => {
                self.features = features;
                self.feature_names = names.to_vec();
                Ok(())
            }
            None => Err(format!(
                "the header's feature columns {:?} are not those of the first header read (the train channel's, for validation and test) {:?}",
                self.feature_names, names
            )),
        }
    }

    fn new(fields: &[&str], options: &TabularOptions) -> Result<Self, String> {
        let names: Vec<String> = fields
            .iter()
            .map(|f| number::unquote(f).to_owned())
            .collect();
        if let Some(twice) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
            .map(|(_, n)| n)
        {
            return Err(format!(
                "the header names column '{twice}' twice; columns are matched by name"
            ));
        }
        let label = names.iter().position(|n| *n == options.label_column).ok_or_else(|| {
            format!(
                "the header has no label column '{}' (set the hyperparameter label_column, or use a headerless CSV with the label in column 0; a first line without numbers is read as a header)",
                options.label_column
            )
        })?;
        let weight = if options.csv_weights {
            Some(
                names
                    .iter()
                    .position(|n| n == "weight")
                    .ok_or("csv_weights is set but the header has no 'weight' column".to_owned())?,
            )
        } else {
            None
        };
        let features: Vec<usize> = (0..names.len())
            .filter(|&i| i != label && Some(i) != weight)
            .collect();
        let feature_names = features.iter().map(|&i| names[i].clone()).collect();
        Ok(Self {
            label,
            weight,
            features,
            feature_names,
        })
    }
}

/// Appends one CSV row; a feature that is not a number is recorded in `problems` (the row is
/// dropped, and the file fails once it has been read to the end).
fn csv_row(
    fields: &[&str],
    header: Option<&CsvHeader>,
    options: &TabularOptions,
    table: &mut Table,
    line: usize,
    problems: &mut NonNumeric,
) -> Result<(), String> {
    let (label, weight, features): (usize, Option<usize>, Vec<usize>) = match header {
        Some(h) => {
            if fields.len() != h.features.len() + 1 + usize::from(h.weight.is_some()) {
                return Err(format!(
                    "expected {} columns as in the header, found {}",
                    h.features.len() + 1 + usize::from(h.weight.is_some()),
                    fields.len()
                ));
            }
            (h.label, h.weight, h.features.clone())
        }
        None => {
            let skip = 1 + usize::from(options.csv_weights);
            if fields.len() <= skip {
                return Err(format!(
                    "expected the label{} then at least one feature, found {} column(s)",
                    if options.csv_weights {
                        ", the weight"
                    } else {
                        ""
                    },
                    fields.len()
                ));
            }
            (
                0,
                options.csv_weights.then_some(1),
                (skip..fields.len()).collect(),
            )
        }
    };
    table.set_width(features.len())?;
    let w = weight
        .map(|i| {
            number::parse(fields[i])
                .map(|v| v as f32)
                .map_err(|e| format!("column {} (the weight) {e}", i + 1))
        })
        .transpose()?;
    let start = table.features.len();
    let mut complete = true;
    for (k, &i) in features.iter().enumerate() {
        let f = number::unquote(fields[i]);
        match table.feature_value(k, f) {
            Some(v) => table.features.push(v),
            None if f.parse::<f64>().is_ok() => {
                // A number, but beyond the float32 range: its own message, at once.
                table.features.truncate(start);
                let e = number::parse(f).err().unwrap_or_default();
                return Err(format!("column {} {e}", i + 1));
            }
            None => {
                problems.add(i, header.map(|h| &h.feature_names[k]), line, f);
                complete = false;
            }
        }
    }
    if !complete {
        table.features.truncate(start);
        return Ok(());
    }
    let y = match table.label_of_text(number::unquote(fields[label])) {
        Ok(y) => y,
        Err(e) => {
            table.features.truncate(start);
            return Err(format!("column {} ({e})", label + 1));
        }
    };
    table.labels.push(y);
    if let Some(w) = w {
        table.weights.push(w);
    }
    Ok(())
}

fn json_row(
    text: &str,
    options: &TabularOptions,
    table: &mut Table,
    line: usize,
    problems: &mut NonNumeric,
) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let label = v
        .get(&options.label_column)
        .or_else(|| v.get("label"))
        .ok_or_else(|| format!("no '{}' field", options.label_column))?;
    let features = v
        .get("features")
        .and_then(serde_json::Value::as_array)
        .ok_or("no 'features' array")?;
    let weight = if options.csv_weights {
        let w = v
            .get("weight")
            .and_then(serde_json::Value::as_f64)
            .ok_or("csv_weights is set but the record has no numeric 'weight'")?;
        Some(number::checked(w).map_err(|e| format!("the weight {e}"))? as f32)
    } else {
        None
    };
    table.set_width(features.len())?;
    let start = table.features.len();
    let mut complete = true;
    for (k, f) in features.iter().enumerate() {
        let value = match f {
            serde_json::Value::Null => Some(f32::NAN),
            serde_json::Value::Number(n) if !table.is_categorical(k) => {
                let x = number::checked(n.as_f64().unwrap_or(f64::NAN)).map_err(|e| {
                    table.features.truncate(start);
                    format!("feature {} {e}", k + 1)
                })?;
                Some(x as f32)
            }
            serde_json::Value::Number(n) => table.feature_value(k, &n.to_string()),
            serde_json::Value::String(s) => table.feature_value(k, s.trim()),
            _ => None,
        };
        match value {
            Some(x) => table.features.push(x),
            None => {
                let shown = match f {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                problems.add(k, None, line, &shown);
                complete = false;
            }
        }
    }
    if !complete {
        table.features.truncate(start);
        return Ok(());
    }
    match table.label_of_json(label) {
        Ok(y) => table.labels.push(y),
        Err(e) => {
            table.features.truncate(start);
            return Err(e);
        }
    }
    table.weights.extend(weight);
    Ok(())
}

/// Highest libsvm feature index + 1 (rows are held dense, one float per feature).
pub const MAX_LIBSVM_FEATURES: usize = 1 << 20;

/// Largest dense feature matrix libsvm rows may widen to (8 GiB).
const MAX_DENSE_BYTES: usize = 8 << 30;

fn libsvm_row(text: &str, table: &mut Table) -> Result<(), String> {
    let mut tokens = text.split_whitespace();
    let head = tokens.next().unwrap_or("");
    let (label, weight) = match head.split_once(':') {
        Some((l, w)) => (l, Some(w)),
        None => (head, None),
    };
    let label =
        number_of(label).ok_or_else(|| format!("the label is not a number: \"{label}\""))?;
    let mut entries = Vec::new();
    let mut tokens = tokens.take_while(|t| !t.starts_with('#')).peekable();
    let query_id = match tokens.peek().and_then(|t| t.strip_prefix("qid:")) {
        Some(q) => {
            let q = q
                .parse::<u32>()
                .map_err(|_| format!("'qid:{q}': the query id is not a whole number"))?;
            tokens.next();
            Some(q)
        }
        None => None,
    };
    if (query_id.is_some() && table.query_ids.len() != table.rows())
        || (query_id.is_none() && !table.query_ids.is_empty())
    {
        return Err(
            "some rows have a qid: and others not; give every row of a ranking job its query id"
                .into(),
        );
    }
    for t in tokens {
        let (i, v) = t
            .split_once(':')
            .ok_or_else(|| format!("'{t}' is not index:value"))?;
        let i: usize = i
            .parse()
            .map_err(|_| format!("'{t}': the index is not a whole number"))?;
        if i >= MAX_LIBSVM_FEATURES {
            return Err(format!(
                "'{t}': index {i} is beyond the {MAX_LIBSVM_FEATURES} features this container takes (rows are held dense)"
            ));
        }
        let v = number_of(v).ok_or_else(|| format!("'{t}': the value is not a number"))?;
        entries.push((i, v as f32));
    }
    let weight = weight
        .map(|w| number_of(w).ok_or_else(|| format!("the weight is not a number: \"{w}\"")))
        .transpose()?;
    push_sparse(table, &entries)?;
    // `label:weight` is an instance weight whether or not csv_weights (which is about CSV) is
    // set, as XGBoost's own libsvm reader, and so the built-in algorithm, takes it; once a row
    // has one, the rows without one weigh 1.
    match weight {
        Some(w) => {
            table.weights.resize(table.labels.len(), 1.0);
            table.weights.push(w as f32);
        }
        None if !table.weights.is_empty() => table.weights.push(1.0),
        None => {}
    }
    table.labels.push(label as f32);
    table.query_ids.extend(query_id);
    Ok(())
}

/// Checks that the rows so far and one more, `width` columns each (at least the current width),
/// fit the memory this container allows when held dense.
fn check_dense_size(table: &Table, width: usize) -> Result<(), String> {
    let dense_bytes = (table.rows() + 1)
        .saturating_mul(width.max(table.width))
        .saturating_mul(4);
    if dense_bytes > MAX_DENSE_BYTES {
        return Err(format!(
            "column {} makes the rows so far take {} GiB held dense, over the {} GiB this container allows",
            width.saturating_sub(1),
            dense_bytes >> 30,
            MAX_DENSE_BYTES >> 30
        ));
    }
    Ok(())
}

/// Appends one row given as `(column, value)` entries, the others missing; rows so far are
/// widened to the largest column seen unless a dense source fixed the width.
fn push_sparse(table: &mut Table, entries: &[(usize, f32)]) -> Result<(), String> {
    if table.fixed_width {
        if let Some(&(i, _)) = entries.iter().find(|(i, _)| *i >= table.width) {
            return Err(format!(
                "index {i} is beyond the {} features of the CSV or JSON rows before it",
                table.width
            ));
        }
    }
    let needed = entries.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    check_dense_size(table, needed)?;
    table.widen(needed);
    let start = table.features.len();
    table.features.resize(start + table.width, f32::NAN);
    for &(i, v) in entries {
        table.features[start + i] = v;
    }
    Ok(())
}

/// Parses a RecordIO-protobuf source: label and features of each `Record` (dense or sparse).
fn parse_recordio(
    reader: impl std::io::Read,
    options: &TabularOptions,
    source: &str,
    table: &mut Table,
) -> Result<()> {
    if options.csv_weights {
        return Err(Error::Data(format!(
            "{source}: csv_weights is set, but RecordIO-protobuf records carry no instance weight"
        )));
    }
    for (n, record) in super::recordio::Records::new(reader).enumerate() {
        let located = |m: String| Error::Data(format!("{source}: record {}: {m}", n + 1));
        let example = record
            .and_then(|r| super::recordio::example(&r))
            .map_err(located)?;
        if example.dense {
            table.set_width(example.features.len()).map_err(located)?;
            table.features.extend(example.features.iter().map(|e| e.1));
        } else {
            // Sparse rows are held dense: the bound libsvm indices have, before any width is
            // computed from a key (a key of 2^64 - 1 would wrap).
            let last_column = example.width.map(|w| w.saturating_sub(1));
            let columns = example.features.iter().map(|e| e.0).chain(last_column);
            if let Some(k) = columns.filter(|&k| k >= MAX_LIBSVM_FEATURES).max() {
                return Err(located(format!(
                    "sparse column {k} is beyond the {MAX_LIBSVM_FEATURES} features this container takes (rows are held dense)"
                )));
            }
            if let Some(width) = example.width.filter(|_| !table.fixed_width) {
                check_dense_size(table, width).map_err(located)?;
                table.widen(width);
            }
            push_sparse(table, &example.features).map_err(located)?;
        }
        table.labels.push(example.label);
    }
    Ok(())
}

fn number_of(field: &str) -> Option<f64> {
    number::parse(field).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_found_from_the_first_line() {
        assert_eq!(detect_delimiter("a,b,c"), ',');
        assert_eq!(detect_delimiter("age\tworkclass\tincome"), '\t');
        assert_eq!(detect_delimiter("a;b;\"c,d\""), ';');
        assert_eq!(detect_delimiter("label,a|b|c"), ',');
        assert_eq!(detect_delimiter("x|y"), '|');
        assert_eq!(detect_delimiter("single"), ',');
        // A tab-separated file with a header: its columns by name, as with commas.
        let mut t = Table::default();
        let tsv = "price\ta\tb\n1\t2\t3\n4\t\t6\n";
        parse(
            tsv.as_bytes(),
            TabularFormat::Csv,
            &opts(false),
            "t.tsv",
            &mut t,
        )
        .unwrap();
        assert_eq!(t.labels, [1.0, 4.0]);
        assert_eq!(t.names.as_deref().unwrap(), ["a", "b"]);
        // Set by the job, the separator is not guessed.
        let mut t = Table::default();
        let options = TabularOptions {
            delimiter: Some(';'),
            ..opts(false)
        };
        parse(
            "1;2,5\n".as_bytes(),
            TabularFormat::Csv,
            &options,
            "e.csv",
            &mut t,
        )
        .unwrap();
        let e = t.finish_text("train").unwrap_err().to_string();
        assert!(
            e.contains(
                "column 'f0' holds numbers with decimal commas, first \"2,5\" (e.csv line 1)"
            ),
            "{e}"
        );
        let mut t = Table::default();
        parse(
            "1;2\n".as_bytes(),
            TabularFormat::Csv,
            &options,
            "e.csv",
            &mut t,
        )
        .unwrap();
        assert_eq!(t.features, [2.0]);
    }

    fn opts(weights: bool) -> TabularOptions {
        TabularOptions {
            label_column: "price".into(),
            csv_weights: weights,
            delimiter: None,
        }
    }

    /// A train channel of one file.
    fn load(text: &str, format: TabularFormat, o: &TabularOptions) -> Result<Table> {
        let mut t = Table::default();
        parse(text.as_bytes(), format, o, "f", &mut t)?;
        t.finish_text("train")?;
        Ok(t)
    }

    /// A later channel of one file, read like `train`.
    fn load_like(train: &Table, text: &str, format: TabularFormat) -> Result<Table> {
        let mut t = Table::like(train.names.clone(), train.encoding.clone());
        parse(text.as_bytes(), format, &opts(false), "v", &mut t)?;
        t.finish_text("validation")?;
        Ok(t)
    }

    #[test]
    fn a_channel_with_text_takes_no_file_of_numbers_only() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        std::fs::create_dir_all(&train).unwrap();
        std::fs::write(train.join("a.csv"), "price,city\nhigh,paris\nlow,lyon\n").unwrap();
        std::fs::write(train.join("b.libsvm"), "1 0:94110\n").unwrap();
        let e = load_channel(dir.path(), "train", None, &opts(false), None, &|| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "b.libsvm holds numbers only, but the table has text columns or text labels"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_quoted_field_holding_the_delimiter_is_one_field() {
        // As pandas' to_csv writes names: the comma inside the quotes is the name's.
        let csv =
            "price,name,age\n1,\"Braund, Mr. Owen\",22\n0,\"Heikkinen, Miss \"\"Laina\"\"\",26\n";
        let t = load(csv, TabularFormat::Csv, &opts(false)).unwrap();
        assert_eq!(t.width, 2);
        let names = t.encoding.feature(0).unwrap().names();
        assert_eq!(names.len(), 2);
        assert!(names[0].starts_with("Braund, Mr"), "{names:?}");
        assert_eq!((t.features[1], t.features[3]), (22.0, 26.0));
    }

    #[test]
    fn text_columns_are_categories_and_text_labels_classes() {
        let csv = "price,city,size\nhigh,paris,3\nlow,lyon,NA\nhigh,\"nice\",\nlow,paris,2\n";
        let jsonl = "{\"price\":\"high\",\"features\":[\"paris\",3]}\n{\"price\":\"low\",\"features\":[\"lyon\",null]}\n{\"price\":\"high\",\"features\":[\"nice\",null]}\n{\"price\":\"low\",\"features\":[\"paris\",2]}\n";
        for (text, format) in [(csv, TabularFormat::Csv), (jsonl, TabularFormat::JsonLines)] {
            let t = load(text, format, &opts(false)).unwrap();
            let city = t.encoding.feature(0).unwrap();
            assert_eq!(city.names(), ["lyon", "nice", "paris"]);
            assert!(t.encoding.feature(1).is_none());
            assert_eq!(
                t.encoding.classes.as_ref().unwrap().names(),
                ["high", "low"]
            );
            let n = f32::NAN;
            assert!(
                nan_eq(&t.features, &[2.0, 3.0, 0.0, n, 1.0, n, 2.0, 2.0]),
                "{:?}",
                t.features
            );
            assert_eq!(t.labels, [0.0, 1.0, 0.0, 1.0]);
            // A later channel reads names with the train channel's codes; a new one is missing.
            let v = load_like(
                &t,
                "price,city,size\nlow,rome,1\nhigh,lyon,2\n",
                TabularFormat::Csv,
            )
            .unwrap();
            assert!(categories::is_unseen(v.features[0]));
            assert_eq!(&v.features[1..], [1.0, 0.0, 2.0]);
            assert_eq!(v.labels, [1.0, 0.0]);
            let e = load_like(&t, "price,city,size\nmedium,rome,1\n", TabularFormat::Csv)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(
                    "the label \"medium\" is not among the train channel's classes ('high', 'low')"
                ),
                "{e}"
            );
        }
        // Headerless rows with text are data (a first line with numbers in it is no header).
        let t = load("yes,red,1\nno,blue,2\n", TabularFormat::Csv, &opts(false)).unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.encoding.feature(0).unwrap().names(), ["blue", "red"]);
        assert_eq!(t.encoding.classes.as_ref().unwrap().names(), ["no", "yes"]);
    }

    fn nan_eq(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn every_format_reads_the_same_rows_with_missing_values() {
        let n = f32::NAN;
        let want = [1.0, n, 3.0, 4.0, 5.0, n];
        let csv = load("7,1,,3\n8,4,5,\n", TabularFormat::Csv, &opts(false)).unwrap();
        let header = load(
            "a,price,b,c\n1,7,,3\n4,8,5,\n",
            TabularFormat::Csv,
            &opts(false),
        )
        .unwrap();
        let jsonl = load(
            "{\"price\":7,\"features\":[1,null,3]}\n{\"label\":8,\"features\":[4,5,null]}\n",
            TabularFormat::JsonLines,
            &opts(false),
        )
        .unwrap();
        let mut svm = load(
            "7 0:1 2:3\n8 0:4 1:5\n",
            TabularFormat::Libsvm,
            &opts(false),
        )
        .unwrap();
        svm.widen(3);
        for t in [&csv, &header, &jsonl, &svm] {
            assert!(nan_eq(&t.features, &want), "{:?}", t.features);
            assert_eq!(t.labels, vec![7.0, 8.0]);
            assert_eq!(t.width, 3);
        }
        assert_eq!(
            header.names.as_deref(),
            Some(&["a".to_owned(), "b".into(), "c".into()][..])
        );
    }

    #[test]
    fn weights_and_libsvm_widening() {
        let t = load("7,0.5,1,2\n8,2,3,4\n", TabularFormat::Csv, &opts(true)).unwrap();
        assert_eq!(t.weights, vec![0.5, 2.0]);
        assert_eq!(t.features, vec![1.0, 2.0, 3.0, 4.0]);
        let t = load("1:0.5 1:1\n0:2 4:1\n", TabularFormat::Libsvm, &opts(false)).unwrap();
        assert_eq!(t.weights, vec![0.5, 2.0]);
        assert_eq!(t.width, 5);
        assert_eq!(t.features[1], 1.0);
        assert_eq!(t.features[5 + 4], 1.0);
        assert!(t.features[4].is_nan());
        // libsvm weights without csv_weights too (as XGBoost reads them); unweighted rows
        // weigh 1 once a row has a weight; no weights at all, none.
        let mixed = load(
            "1 0:1\n0:3 0:2\n1 0:5\n",
            TabularFormat::Libsvm,
            &opts(true),
        );
        assert_eq!(mixed.unwrap().weights, vec![1.0, 3.0, 1.0]);
        let none = load("1 0:1\n0 0:2\n", TabularFormat::Libsvm, &opts(true)).unwrap();
        assert!(none.weights.is_empty());
    }

    #[test]
    fn sparse_recordio_columns_are_bounded_as_libsvm_indices() {
        use crate::data::recordio::tests::sparse_example;
        let read = |body: Vec<u8>| {
            let mut table = Table::default();
            parse_recordio(&body[..], &opts(false), "r.rec", &mut table).map(|()| table)
        };
        let t = read(sparse_example(1.0, &[2.0], &[3])).unwrap();
        assert_eq!((t.width, t.labels), (4, vec![1.0]));
        for key in [MAX_LIBSVM_FEATURES as u64, u64::MAX] {
            let e = read(sparse_example(1.0, &[2.0], &[key]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("features this container takes"), "{key}: {e}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = load("7,1,2\n8,1\n", TabularFormat::Csv, &opts(false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f: line 2: 1 features, but earlier rows have 2"),
            "{e}"
        );
        // A column of mostly numbers with some text has bad values: every one in one message.
        let e = load(
            "7,1,2,5\n8,1,x,oops\n9,1,3,6\n",
            TabularFormat::Csv,
            &opts(false),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("channel 'train': 2 column(s) cannot be read: column 'f1' holds 1 text value(s) among 2 numbers, first \"x\" (f line 2); column 'f2' holds 1 text value(s) among 2 numbers, first \"oops\" (f line 2)"),
            "{e}"
        );
        // Text where the train channel has numbers: every such column of a file in one message.
        let train = load("price,a,b,c\n1,1,2,3\n", TabularFormat::Csv, &opts(false)).unwrap();
        let e = load_like(
            &train,
            "price,a,b,c\n1,x,2,y\n2,z,3,4\n",
            TabularFormat::Csv,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("2 column(s) hold text where the train channel's hold numbers")
                && e.contains("column 2 'a': 2 value(s), first \"x\" on line 2")
                && e.contains("column 4 'c': 1 value(s), first \"y\" on line 2"),
            "{e}"
        );
        let e = load("a,b\n1,2\n", TabularFormat::Csv, &opts(false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no label column 'price'"), "{e}");
        let e = load("1 3:x\n", TabularFormat::Libsvm, &opts(false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'3:x': the value is not a number"), "{e}");
    }

    #[test]
    fn sniffing() {
        assert_eq!(TabularFormat::sniff("1 3:1 10:1"), TabularFormat::Libsvm);
        assert_eq!(
            TabularFormat::sniff("1:0.5 qid:3 0:1e-3 # c"),
            TabularFormat::Libsvm
        );
        // Tab-separated rows with times are CSV, as is a label alone.
        assert_eq!(
            TabularFormat::sniff("1\t2024-01-01 10:00:00\t5"),
            TabularFormat::Csv
        );
        assert_eq!(TabularFormat::sniff("1\t08:15\tx"), TabularFormat::Csv);
        assert_eq!(TabularFormat::sniff("1"), TabularFormat::Csv);
        assert_eq!(TabularFormat::sniff("1,3,4"), TabularFormat::Csv);
        assert_eq!(TabularFormat::sniff("a,b:c"), TabularFormat::Csv);
        assert_eq!(
            TabularFormat::sniff("{\"label\":1}"),
            TabularFormat::JsonLines
        );
    }
}
