//! Request bodies to feature rows, predictions to response bodies.
//!
//! Inputs: `text/csv` (no header, one record per line), `application/json` (a flat object of
//! named features, `{"features": {...} | [...]}`, `{"instances": [...]}` of either, or an array
//! of value arrays) and `application/jsonlines` (one record per line). Outputs: the same three
//! types, in the record shape of the model's kind ([`common::kinds`]; see the README). Media types
//! are compared case-insensitively, parameters ignored.

use crate::error::ServeError;
use common::data::{categories, media_type_essence, number, Schema};
use common::kinds::Predictions;
use ndarray::Array2;
use serde_json::Value;

/// An input body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `text/csv`.
    Csv,
    /// `application/json`.
    Json,
    /// `application/jsonlines`.
    JsonLines,
    /// `text/libsvm`: `[label] index:value ...` per line, 0-based indices (as XGBoost reads
    /// them), an absent index a missing value.
    Libsvm,
    /// `application/x-recordio-protobuf`: SageMaker's RecordIO-wrapped `Record`s, features as a
    /// dense or sparse tensor under `values` (an absent sparse key a missing value).
    RecordIo,
}

/// A response body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `application/json`.
    Json,
    /// `text/csv`.
    Csv,
    /// `application/jsonlines`.
    JsonLines,
    /// `application/x-recordio-protobuf`: one `Record` per record, its `label` map holding the
    /// selected keys (XGBoost models trained elsewhere with selected output keys).
    RecordIo,
}

impl Output {
    /// The response Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Output::Json => "application/json",
            Output::Csv => "text/csv",
            Output::JsonLines => "application/jsonlines",
            Output::RecordIo => "application/x-recordio-protobuf",
        }
    }
}

/// The input format of a request; without a Content-Type, a body starting with `{` or `[` is
/// JSON and anything else CSV (a byte-order mark before it is not part of the body).
pub fn input_format(content_type: Option<&str>, body: &[u8]) -> Result<Input, ServeError> {
    let Some(ct) = content_type.filter(|c| !c.trim().is_empty()) else {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        return Ok(if matches!(first, Some(b'{' | b'[')) {
            Input::Json
        } else {
            Input::Csv
        });
    };
    match media_type_essence(ct).as_str() {
        "text/csv" | "text/x-csv" | "application/csv" => Ok(Input::Csv),
        "application/json" => Ok(Input::Json),
        "application/jsonlines"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/x-ndjson" => Ok(Input::JsonLines),
        "text/libsvm" | "text/x-libsvm" | "application/x-libsvm" => Ok(Input::Libsvm),
        "application/x-recordio-protobuf" => Ok(Input::RecordIo),
        _ => Err(ServeError::UnsupportedMediaType(
            ct.chars().take(100).collect(),
        )),
    }
}

fn output_of(media_type: &str) -> Option<Output> {
    match media_type_essence(media_type).as_str() {
        "application/json" | "application/*" => Some(Output::Json),
        "text/csv" | "text/*" => Some(Output::Csv),
        "application/jsonlines"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/x-ndjson" => Some(Output::JsonLines),
        "application/x-recordio-protobuf" => Some(Output::RecordIo),
        _ => None,
    }
}

/// The output format for an `Accept` header: the supported type with the highest q-value (first
/// listed on ties); missing or `*/*` means `default`.
pub fn output_format(accept: Option<&str>, default: &str) -> Result<Output, ServeError> {
    let accept = accept
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("*/*");
    let mut best: Option<(f32, Output)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let out = if media == "*/*" {
            output_of(default)
        } else {
            output_of(media)
        };
        if let Some(out) = out.filter(|_| q > 0.0) {
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, out));
            }
        }
    }
    best.map(|(_, o)| o)
        .ok_or_else(|| ServeError::NotAcceptable(accept.chars().take(100).collect()))
}

/// Decodes a body into one row per record, columns in the schema's feature order; features the
/// schema derives are computed when a named record leaves them out. With `batch`, blank lines
/// inside CSV or JSON Lines are errors (each input line must yield one output line).
pub fn decode(
    format: Input,
    body: &[u8],
    schema: &Schema,
    batch: bool,
) -> Result<Array2<f32>, ServeError> {
    let names = &schema.feature_names;
    if format == Input::RecordIo {
        return recordio_body(body, schema);
    }
    let text =
        std::str::from_utf8(body).map_err(|e| bad(format!("body is not UTF-8 text: {e}")))?;
    // A byte-order mark (Windows editors write one) is not part of the first record.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(bad("empty body: send at least one record".into()));
    }
    let n = names.len();
    // One record per line for CSV and JSON Lines: size the matrix once, but never beyond what
    // the body can hold at two bytes per value ("1," or "1\n"), so a body of blank lines reserves
    // at most twice its size (and touches none of it) before it is refused.
    let rows = match format {
        Input::Json | Input::RecordIo => 16,
        Input::Csv | Input::JsonLines | Input::Libsvm => {
            // (memchr's count: the plain byte filter was a quarter of decoding a 6 MB batch.)
            let lines = memchr::memchr_iter(b'\n', body).count() + 1;
            lines.min(body.len() / (2 * n).max(1) + 1)
        }
    };
    let mut values = crate::buffers::VALUES.take(n * rows, n * rows);
    values.reserve_exact(n * rows);
    // A libsvm line of two bytes is a whole row of missing values: bound what lines expand to
    // (CSV and JSON Lines take two bytes a value at least, so their bodies bound them).
    let cap = max_values(body.len());
    let room = |values: &Vec<f32>| -> Result<(), String> {
        if values.len() + n > cap {
            return Err(too_many_values(cap, n));
        }
        Ok(())
    };
    match format {
        Input::Csv => {
            let plain = (0..n).all(|k| schema.categories_of(k).is_none());
            for_lines(text, batch, |line| {
                if plain && bare_numbers(line.as_bytes(), n, &mut values) {
                    return Ok(());
                }
                csv_record(line, schema, &mut values)
            })?
        }
        Input::JsonLines => for_lines(text, batch, |line| {
            record(&json_line(line, n)?, schema, &mut values)
        })?,
        Input::Libsvm => for_lines(text, batch, |line| {
            room(&values)?;
            libsvm_record(line, schema, &mut values)
        })?,
        Input::Json => {
            if !named_numbers(text, schema, &mut values) {
                json_body(text, schema, &mut values)?
            }
        }
        Input::RecordIo => unreachable!("decoded above"),
    }
    let rows = values.len() / n;
    Ok(Array2::from_shape_vec((rows, n), values).expect("n values per record"))
}

/// Feature values the records of a sparse body (libsvm, RecordIO) may expand to: 16 Mi (64 MiB
/// of floats), or as many as a dense body of the same size could hold (two bytes a value).
pub fn max_values(body_bytes: usize) -> usize {
    (16usize << 20).max(body_bytes / 2)
}

fn too_many_values(cap: usize, n: usize) -> String {
    format!(
        "the records hold more than {cap} feature values in all ({n} per record); send fewer records per request"
    )
}

fn bad(message: String) -> ServeError {
    ServeError::BadRequest(message)
}

/// Calls `f(line)` for each line that holds a record; its errors are named by record (counted
/// from 1) and line number. Blank lines are skipped, except in batch mode where only a final
/// newline may end the body.
fn for_lines(
    text: &str,
    batch: bool,
    mut f: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), ServeError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    // (Lines found with memchr: `str::split('\n')` was 2.5 % of the server's time in the batch
    // benchmark.)
    let ends = memchr::memchr_iter(b'\n', body.as_bytes()).chain([body.len()]);
    let (mut start, mut record) = (0, 0);
    for (i, end) in ends.enumerate() {
        let line = &body[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if batch {
                return Err(bad(format!(
                    "line {} is empty; in batch mode every line must be a record",
                    i + 1
                )));
            }
            continue;
        }
        record += 1;
        f(line).map_err(|m| bad(format!("record {record} (line {}): {m}", i + 1)))?;
    }
    Ok(())
}

/// Reads a CSV line of exactly `n` bare numbers (no spaces, quotes or empty fields), each
/// finite in `f32`, in one pass over its bytes; true if it was one. Anything else adds nothing
/// and is left to [`csv_record`], which reads every form and names what is wrong. (Most batch
/// lines are such lines; parsing them this way took the batch benchmark, 1M rows of 18
/// features, from 608K to 632K rows/s end to end.)
fn bare_numbers(line: &[u8], n: usize, out: &mut Vec<f32>) -> bool {
    let start = out.len();
    let mut rest = line;
    for k in 0..n {
        let Ok((v, used)) = fast_float2::parse_partial::<f64, _>(rest) else {
            break;
        };
        if number::checked(v).is_err() {
            break;
        }
        out.push(v as f32);
        match rest.get(used) {
            Some(b',') if k + 1 < n => rest = &rest[used + 1..],
            None if k + 1 == n => return true,
            _ => break,
        }
    }
    out.truncate(start);
    false
}

fn csv_record(line: &str, schema: &Schema, out: &mut Vec<f32>) -> Result<(), String> {
    let n = schema.feature_names.len();
    let start = out.len();
    let fields = common::data::csv::fields(line, ',');
    for (k, &field) in fields.iter().enumerate() {
        if k == n {
            out.truncate(start);
            return Err(format!("expected {n} values, found {}", fields.len()));
        }
        let f = number::unquote(field);
        if let Some(c) = schema.categories_of(k) {
            out.push(c.value_of_text(f));
            continue;
        }
        if f.is_empty() && schema.allow_missing {
            out.push(f32::NAN);
            continue;
        }
        if f.is_empty() {
            out.truncate(start);
            return Err(format!("value {} is empty", k + 1));
        }
        match number::parse(f) {
            Ok(v) => out.push(v as f32),
            Err(_) if schema.allow_missing && categories::is_missing(f) => out.push(f32::NAN),
            Err(e) => {
                out.truncate(start);
                return Err(format!("value {} {e} (CSV input has no header)", k + 1));
            }
        }
    }
    if out.len() - start != n {
        let found = out.len() - start;
        out.truncate(start);
        return Err(format!("expected {n} values, found {found}"));
    }
    Ok(())
}

/// A RecordIO-protobuf body, one row per record, read one record at a time: the values are
/// counted against [`max_values`] as they grow (a body of many tiny records is refused before
/// it costs more than that, never first split into a list of records).
fn recordio_body(body: &[u8], schema: &Schema) -> Result<Array2<f32>, ServeError> {
    use common::data::recordio;
    let n = schema.feature_names.len();
    let cap = max_values(body.len());
    let mut values = Vec::new();
    let mut rows = 0;
    for record in recordio::Records::new(body) {
        let record = record.map_err(bad)?;
        if values.len() + n > cap {
            return Err(bad(too_many_values(cap, n)));
        }
        rows += 1;
        let located = |m: String| bad(format!("record {rows}: {m}"));
        let start = values.len();
        values.resize(start + n, f32::NAN);
        let row = &mut values[start..];
        recordio::features(&record, row).map_err(located)?;
        numbers_as_categories(row, schema);
        all_present(row, schema).map_err(located)?;
    }
    if rows == 0 {
        return Err(bad("empty body: send at least one record".into()));
    }
    Ok(Array2::from_shape_vec((rows, n), values).expect("n values per record"))
}

/// One libsvm line: a label first is ignored (as SageMaker's built-in XGBoost does); absent
/// indices are missing values, refused for models that take none.
fn libsvm_record(line: &str, schema: &Schema, out: &mut Vec<f32>) -> Result<(), String> {
    let n = schema.feature_names.len();
    let start = out.len();
    out.resize(start + n, f32::NAN);
    let filled = libsvm_fields(line, schema, &mut out[start..]);
    if filled.is_err() {
        out.truncate(start);
    }
    filled
}

fn libsvm_fields(line: &str, schema: &Schema, row: &mut [f32]) -> Result<(), String> {
    let n = row.len();
    for (k, token) in line.split_ascii_whitespace().enumerate() {
        let Some((index, value)) = token.split_once(':') else {
            if k == 0 {
                continue;
            }
            let shown: String = token.chars().take(40).collect();
            return Err(format!("'{shown}' is not index:value"));
        };
        let i: usize = index.parse().map_err(|_| {
            let shown: String = index.chars().take(40).collect();
            format!("index '{shown}' is not a whole number")
        })?;
        if i >= n {
            return Err(format!(
                "feature index {i} is beyond the model's {n} features (indices are 0-based)"
            ));
        }
        row[i] =
            common::data::number::parse(value).map_err(|e| format!("index {i}: value {e}"))? as f32;
    }
    numbers_as_categories(row, schema);
    all_present(row, schema)
}

/// In a text column, a sparse format's number (libsvm, RecordIO) is the category of that name,
/// as in CSV and JSON (`1.5` is the category named "1.5"), never a code; absent values stay
/// missing.
fn numbers_as_categories(row: &mut [f32], schema: &Schema) {
    if schema.categories.is_empty() {
        return;
    }
    for (k, v) in row.iter_mut().enumerate() {
        if let (Some(c), false) = (schema.categories_of(k), v.is_nan()) {
            *v = c.value_of_number(*v);
        }
    }
}

/// A row of a sparse format (libsvm, RecordIO) may leave features out: refused for models that
/// take no missing values.
fn all_present(row: &[f32], schema: &Schema) -> Result<(), String> {
    match row.iter().position(|v| v.is_nan()) {
        Some(i) if !schema.allow_missing => Err(format!(
            "feature {i} ('{}') is absent; this model needs every feature",
            schema.feature_names[i]
        )),
        _ => Ok(()),
    }
}

/// One JSON Lines record's tree, refused once far larger than a record of `n` features.
fn json_line(line: &str, n: usize) -> Result<Value, String> {
    use serde::de::DeserializeSeed;
    let failure = std::cell::RefCell::new(None);
    let left = std::cell::Cell::new(4 * n + 64);
    let mut de = serde_json::Deserializer::from_str(line);
    let bounded = Bounded {
        left: &left,
        failure: &failure,
        features: n,
    };
    let value = bounded
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match (value, failure.into_inner()) {
        (_, Some(message)) => Err(message),
        (Err(e), None) => Err(format!("not JSON: {e}")),
        (Ok(v), None) => Ok(v),
    }
}

/// Reads a body that is one flat JSON object naming each of the model's numeric features once
/// with a number, without building a JSON tree; true if it was one. Anything else adds nothing
/// and is left to [`json_body`], which reads every form and names what is wrong. (Most
/// single-record requests are such objects; the tree's allocations were about a tenth of the
/// server's time per single-record request.)
fn named_numbers(text: &str, schema: &Schema, out: &mut Vec<f32>) -> bool {
    use serde::de::DeserializeSeed;
    let names = &schema.feature_names;
    if names.is_empty()
        || names.len() > 64
        || schema.categories.iter().any(Option::is_some)
        || names.iter().any(|n| n == "features" || n == "instances")
    {
        return false;
    }
    let start = out.len();
    out.resize(start + names.len(), f32::NAN);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = NamedNumbers {
        schema,
        row: &mut out[start..],
    };
    let read = seed.deserialize(&mut de).is_ok() && de.end().is_ok();
    if !read {
        out.truncate(start);
    }
    read
}

/// The visitor of [`named_numbers`]: fills `row` from an object of exactly the schema's
/// features (at most 64), each once with a number finite in `f32`; any other input is an error.
struct NamedNumbers<'a> {
    schema: &'a Schema,
    row: &'a mut [f32],
}

impl<'de> serde::de::DeserializeSeed<'de> for NamedNumbers<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NamedNumbers<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of the model's features, each a number")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let mut seen = 0u64;
        while let Some(key) = map.next_key_seed(PlainKey)? {
            let k = self
                .schema
                .feature_index(key)
                .filter(|k| seen & (1 << k) == 0)
                .ok_or_else(|| A::Error::custom("not a feature, or one given twice"))?;
            seen |= 1 << k;
            let x = number::checked(map.next_value_seed(PlainNumber)?).map_err(A::Error::custom)?;
            self.row[k] = x as f32;
        }
        if seen.count_ones() as usize != self.schema.feature_names.len() {
            return Err(A::Error::custom("a feature is missing"));
        }
        Ok(())
    }
}

/// A key of [`NamedNumbers`]: a string without escapes (borrowed from the body); any other is
/// an error whose message does not copy it (a hostile body's key may be most of the body).
struct PlainKey;

impl<'de> serde::de::DeserializeSeed<'de> for PlainKey {
    type Value = &'de str;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<&'de str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PlainKey {
    type Value = &'de str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key without escapes")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<&'de str, E> {
        Ok(v)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<&'de str, E> {
        Err(E::custom("a key with escapes"))
    }
}

/// A value of [`NamedNumbers`]: a JSON number as `f64`, as serde_json reads it into `f64` or
/// a `Value` (integers converted with `as`); anything else is an error whose message does not
/// copy it.
struct PlainNumber;

impl<'de> serde::de::DeserializeSeed<'de> for PlainNumber {
    type Value = f64;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PlainNumber {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<f64, E> {
        Err(E::custom("a string"))
    }
}

/// Streams a JSON body's records into `values`, holding one record's tree at a time, never the
/// whole body's (as a `Value`, a 100 MiB body took 10 to 30 times its size). The body is one
/// record (an object, or an array of values), `{"instances": [records]}`, or `[records]`.
fn json_body(text: &str, schema: &Schema, values: &mut Vec<f32>) -> Result<(), ServeError> {
    use serde::de::DeserializeSeed;
    let failure = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let body = JsonBody {
        schema,
        values,
        failure: &failure,
    };
    let records = body.deserialize(&mut de).and_then(|n| de.end().map(|()| n));
    match (records, failure.into_inner()) {
        (_, Some(message)) => Err(bad(message)),
        (Err(e), None) => Err(bad(format!("body is not valid JSON: {e}"))),
        (Ok(0), None) => Err(bad("no records in the body".into())),
        (Ok(_), None) => Ok(()),
    }
}

/// The visitor of [`json_body`]: counts records; a record's own error goes to `failure` (so
/// the client reads it without serde's position suffix).
struct JsonBody<'a> {
    schema: &'a Schema,
    values: &'a mut Vec<f32>,
    failure: &'a std::cell::RefCell<Option<String>>,
}

impl JsonBody<'_> {
    fn fail<E: serde::de::Error>(&self, message: String) -> E {
        *self.failure.borrow_mut() = Some(message);
        E::custom("invalid record")
    }

    fn record<E: serde::de::Error>(&mut self, i: usize, v: &Value) -> Result<(), E> {
        record(v, self.schema, self.values).map_err(|m| self.fail(format!("record {i}: {m}")))
    }

    /// A seed for one record's tree, refused past a few times the model's features in nodes.
    fn bounded<'b>(&'b self, left: &'b std::cell::Cell<usize>) -> Bounded<'b> {
        Bounded {
            left,
            failure: self.failure,
            features: self.schema.feature_names.len(),
        }
    }

    /// Nodes one record's tree may hold: room for named features, `{"features": ...}` and nulls.
    fn record_budget(&self) -> std::cell::Cell<usize> {
        std::cell::Cell::new(4 * self.schema.feature_names.len() + 64)
    }

    /// Records of an array, one tree at a time; an array of values (numbers, strings, nulls:
    /// no arrays or objects) is one record.
    fn records<'de, A: serde::de::SeqAccess<'de>>(
        &mut self,
        mut seq: A,
        numbers_are_one_record: bool,
    ) -> Result<usize, A::Error> {
        let left = self.record_budget();
        let Some(first) = seq.next_element_seed(self.bounded(&left))? else {
            return Ok(0);
        };
        if numbers_are_one_record && !first.is_array() && !first.is_object() {
            // Values in model order; more than the model takes is an error, found at n + 1.
            let mut all = vec![first];
            while all.len() <= self.schema.feature_names.len() {
                match seq.next_element_seed(self.bounded(&left))? {
                    Some(v) => all.push(v),
                    None => break,
                }
            }
            self.record(1, &Value::Array(all))?;
            return Ok(1);
        }
        self.record(1, &first)?;
        let mut count = 1;
        loop {
            let left = self.record_budget();
            let Some(v) = seq.next_element_seed(self.bounded(&left))? else {
                return Ok(count);
            };
            count += 1;
            self.record(count, &v)?;
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonBody<'_> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonBody<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object or array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, seq: A) -> Result<usize, A::Error> {
        self.records(seq, true)
    }

    /// (serde's own error would quote the string: a whole 100 MiB body, in memory and in the
    /// answer.)
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<usize, E> {
        Err(E::invalid_type(
            serde::de::Unexpected::Other("string"),
            &self,
        ))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<usize, A::Error> {
        let mut single = serde_json::Map::new();
        let mut streamed = None;
        let left = self.record_budget();
        while let Some(key) = map.next_key::<String>()? {
            if key == "instances" && streamed.is_none() {
                streamed = Some(map.next_value_seed(Instances(&mut self))?);
            } else if streamed.is_none() {
                let value = map.next_value_seed(self.bounded(&left))?;
                single.insert(key, value);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        match streamed {
            Some(count) => Ok(count),
            None => self.record(1, &Value::Object(single)).map(|()| 1),
        }
    }
}

/// One record's JSON tree, built while at most `left` nodes remain: a record of millions of
/// values is refused as it is read, not after it sits in memory as a tree.
struct Bounded<'b> {
    left: &'b std::cell::Cell<usize>,
    failure: &'b std::cell::RefCell<Option<String>>,
    features: usize,
}

impl Bounded<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                *self.failure.borrow_mut() = Some(format!(
                    "a record holds far more values than the model's {} features",
                    self.features
                ));
                Err(E::custom("record too large"))
            }
        }
    }

    fn again(&self) -> Self {
        Bounded {
            left: self.left,
            failure: self.failure,
            features: self.features,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.take().map(|()| Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.take().map(|()| Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.take().map(|()| Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.take().map(|()| Value::from(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.take().map(|()| Value::from(v))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.take().map(|()| Value::String(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take().map(|()| Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self.again())? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.take()?;
            let value = map.next_value_seed(self.again())?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The value of `"instances"`: an array of records.
struct Instances<'s, 'a>(&'s mut JsonBody<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for Instances<'_, '_> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Instances<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<usize, A::Error> {
        self.0.records(seq, false)
    }

    /// (Not quoted in the error, as in [`JsonBody`].)
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<usize, E> {
        Err(E::invalid_type(
            serde::de::Unexpected::Other("string"),
            &self,
        ))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<usize, A::Error> {
        Err(self
            .0
            .fail("'instances' must be an array of records".into()))
    }
}

/// Appends one record's values: an object of named features (optionally under `features`) or
/// an array of values in model order.
fn record(v: &Value, schema: &Schema, out: &mut Vec<f32>) -> Result<(), String> {
    let names = &schema.feature_names;
    match v {
        Value::Object(o) if o.contains_key("features") => record(&o["features"], schema, out),
        Value::Object(o) => {
            let start = out.len();
            let mut present = vec![true; names.len()];
            for (k, (name, given)) in names.iter().zip(&mut present).enumerate() {
                match o.get(name).map(|v| value(v, schema, k)) {
                    Some(Ok(x)) => out.push(x),
                    Some(Err(m)) => {
                        out.truncate(start);
                        return Err(format!("feature '{name}' {m}"));
                    }
                    None => {
                        *given = false;
                        out.push(f32::NAN);
                    }
                }
            }
            schema
                .complete_row(&mut out[start..], |i| present[i])
                .inspect_err(|_| out.truncate(start))
        }
        Value::Array(a) => {
            if a.len() != names.len() {
                return Err(format!(
                    "expected {} values, found {}",
                    names.len(),
                    a.len()
                ));
            }
            let start = out.len();
            for (k, x) in a.iter().enumerate() {
                match value(x, schema, k) {
                    Ok(x) => out.push(x),
                    Err(m) => {
                        out.truncate(start);
                        return Err(format!("value {} ('{}') {m}", k + 1, names[k]));
                    }
                }
            }
            Ok(())
        }
        _ => Err("expected an object of named features or an array of values".into()),
    }
}

/// Feature `k`'s value: a number or numeric string, or for a categorical feature a category's
/// name (or number); `null` is missing (NaN) when the schema allows it.
fn value(v: &Value, schema: &Schema, k: usize) -> Result<f32, String> {
    let allow_missing = schema.allow_missing;
    if allow_missing && v.is_null() {
        return Ok(f32::NAN);
    }
    if let Some(c) = schema.categories_of(k) {
        return match v {
            Value::String(s) => Ok(c.value_of_text(s.trim())),
            Value::Number(n) => Ok(n
                .as_f64()
                .and_then(|x| common::data::number::checked(x).ok())
                .map_or(categories::UNSEEN, |x| c.value_of_number(x as f32))),
            _ => {
                let shown: String = v.to_string().chars().take(40).collect();
                Err(format!("is not a category name or number: {shown}"))
            }
        };
    }
    let x = match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("is not a number: {n}")),
        Value::String(s) if allow_missing && categories::is_missing(s.trim()) => {
            return Ok(f32::NAN)
        }
        Value::String(s) => common::data::number::parse(s),
        _ => {
            let shown: String = v.to_string().chars().take(40).collect();
            Err(format!("is not a number: {shown}"))
        }
    };
    x.and_then(common::data::number::checked).map(|x| x as f32)
}

/// Encodes predictions as RecordIO-framed protobuf `Record`s, one per record; a 406 for
/// predictions that are not answered that way.
pub fn encode_recordio(p: &dyn Predictions) -> Result<Vec<u8>, ServeError> {
    let mut out = Vec::new();
    for i in 0..p.records() {
        if !p.recordio_record(i, &mut out) {
            return Err(ServeError::NotAnswerableAs(
                "application/x-recordio-protobuf answers come only from XGBoost models trained elsewhere with output keys selected (SAGEMAKER_INFERENCE_OUTPUT, or the output= custom attribute)".into(),
            ));
        }
    }
    Ok(out)
}

/// Encodes predictions into one string. JSON is `{"predictions": [record, ...]}`; in batch mode
/// JSON is written one record per line so the output lines up with the input lines.
pub fn encode(p: &dyn Predictions, format: Output, batch: bool) -> String {
    let mut whole = String::new();
    encode_in_chunks(p, format, batch, usize::MAX, |chunk| {
        whole = chunk;
        true
    });
    whole
}

/// The answer's exact length in bytes, found by encoding it without keeping it.
pub fn encoded_len(p: &dyn Predictions, format: Output, batch: bool) -> usize {
    let mut len = 0;
    encode_in_chunks(p, format, batch, 1 << 16, |chunk| {
        len += chunk.len();
        true
    });
    len
}

/// An estimate of the answer's size: the first record's size for every record.
pub fn estimated_len(p: &dyn Predictions, format: Output) -> usize {
    let mut first = String::new();
    if p.records() > 0 {
        match format {
            Output::Csv | Output::RecordIo => p.csv_record(0, &mut first),
            _ => p.json_record(0, &mut first),
        }
    }
    (first.len() + 2) * p.records() + 32
}

/// Encodes predictions as [`encode`] does, handing the text to `emit` in pieces of about `chunk`
/// bytes (the last may be shorter); stops early when `emit` returns false.
pub fn encode_in_chunks(
    p: &dyn Predictions,
    format: Output,
    batch: bool,
    chunk: usize,
    mut emit: impl FnMut(String) -> bool,
) {
    let n = p.records();
    // Sized from the first record, so a whole answer grows by copying at most once or twice.
    let capacity = estimated_len(p, format).min(chunk.saturating_add(4096));
    let mut out = String::with_capacity(capacity);
    let mut flush = |out: &mut String, last: bool| -> bool {
        if out.len() >= chunk || (last && !out.is_empty()) {
            let full =
                std::mem::replace(out, String::with_capacity(if last { 0 } else { capacity }));
            return emit(full);
        }
        true
    };
    let json_array = format == Output::Json && !batch;
    let one_line = !batch && p.csv_records_on_one_line();
    if json_array {
        out.push_str("{\"predictions\":[");
    }
    for i in 0..n {
        match format {
            Output::Json if !batch => {
                if i > 0 {
                    out.push(',');
                }
                p.json_record(i, &mut out);
            }
            Output::Json | Output::JsonLines => {
                p.json_record(i, &mut out);
                out.push('\n');
            }
            Output::Csv if one_line => {
                if i > 0 {
                    out.push(',');
                }
                p.csv_record(i, &mut out);
            }
            // RecordIO answers are binary: encode_recordio writes them.
            Output::Csv | Output::RecordIo => {
                p.csv_record(i, &mut out);
                out.push('\n');
            }
        }
        if !flush(&mut out, false) {
            return;
        }
    }
    if json_array {
        out.push_str("]}");
    }
    flush(&mut out, true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::kinds::fire::FirePredictions;
    use common::kinds::tabular::TabularPredictions;

    /// The one-pass reading of bare numbers takes exactly the lines the full reading reads,
    /// with the same values; every other line is the full reading's (same values or error).
    #[test]
    fn bare_number_lines_read_as_the_full_reading_does() {
        let schema = schema();
        for line in [
            "1,2",
            "1.5e3,-2",
            "+3,.5",
            "1.,-0",
            "0.1,3.4e38",
            "1,2,3",
            "1",
            "1,",
            ",1",
            "1,,2",
            " 1,2",
            "1 ,2",
            "\"1\",2",
            "1,inf",
            "NaN,1",
            "1e39,1",
            "1e,2",
            "0x10,2",
            "1,2e",
            "1;2",
            "1,2\t",
            "-,1",
            "1e-50,1",
            "123456789012345678901234567890,1",
        ] {
            let mut fast = Vec::new();
            let taken = bare_numbers(line.as_bytes(), 2, &mut fast);
            let mut full = Vec::new();
            let read = csv_record(line, &schema, &mut full);
            if taken {
                assert_eq!((read.clone(), &full), (Ok(()), &fast), "{line}");
            } else {
                assert!(fast.is_empty(), "{line}");
            }
            let body = format!("{line}\n");
            let decoded = decode(Input::Csv, body.as_bytes(), &schema, true)
                .map(|x| x.into_raw_vec_and_offset().0)
                .map_err(|e| e.message().to_string());
            let want = read
                .map(|()| full)
                .map_err(|m| format!("record 1 (line 1): {m}"));
            match (&decoded, &want) {
                (Err(d), Err(w)) => assert!(d.contains(w.as_str()), "{line}: {d}"),
                _ => assert_eq!(decoded, want, "{line}"),
            }
        }
    }

    /// The tree-free reading of one named record takes only bodies the full reading reads,
    /// with the same values; every other body is the full reading's (same values or error).
    #[test]
    fn named_records_read_as_the_full_reading_does() {
        let mut with_missing = schema();
        with_missing.allow_missing = true;
        for (k, body) in [
            r#"{"a": 1, "b": 2}"#,
            r#"{"b": -2.5e3, "a": 0.1}"#,
            r#" {"a":1,"b":2} "#,
            r#"{"a": -0, "b": -0.0}"#,
            r#"{"a": 18446744073709551615, "b": -9223372036854775808}"#,
            r#"{"a": 1e-46, "b": 3.4028235e38}"#,
            r#"{"a": 1, "b": 3.4028236e38}"#,
            r#"{"a": 1, "b": 2, "a": 3}"#,
            r#"{"a": 1}"#,
            r#"{"a": 1, "b": 2, "c": 3}"#,
            r#"{"a": "1", "b": 2}"#,
            r#"{"a": null, "b": 2}"#,
            r#"{"a": 1e39, "b": 2}"#,
            r#"{"a": [1], "b": 2}"#,
            r#"{"\u0061": 1, "b": 2}"#,
            r#"{"features": {"a": 1, "b": 2}}"#,
            r#"{"features": [1, 2]}"#,
            r#"{"instances": [{"a": 1, "b": 2}]}"#,
            r#"{"a": 1, "b": 2} x"#,
            r#"{"a": 1, "b": 2}{"a": 1, "b": 2}"#,
            r#"{"a": 1, "b": 2"#,
            r#"{}"#,
            r#"[1, 2]"#,
            r#"[{"a": 1, "b": 2}]"#,
            r#"1"#,
        ]
        .into_iter()
        .enumerate()
        {
            for schema in [schema(), with_missing.clone()] {
                // (Bits, so that missing values compare equal and -0 differs from 0.)
                let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let mut fast = Vec::new();
                let taken = named_numbers(body, &schema, &mut fast);
                let mut full = Vec::new();
                let read = json_body(body, &schema, &mut full).map_err(|e| e.message().to_string());
                if taken {
                    assert_eq!(
                        (read.clone(), bits(full.clone())),
                        (Ok(()), bits(fast)),
                        "{body}"
                    );
                } else {
                    assert!(fast.is_empty(), "{body}");
                }
                assert_eq!(taken, k < 5, "{body}: taken {taken}");
                let decoded = decode(Input::Json, body.as_bytes(), &schema, false)
                    .map(|x| bits(x.into_raw_vec_and_offset().0))
                    .map_err(|e| e.message().to_string());
                assert_eq!(decoded, read.map(|()| bits(full)), "{body}");
            }
        }
        // The sample payload takes it.
        let fire = common::kinds::fire::schema();
        let body = include_str!("../../sample-payloads/fire-single.json");
        assert!(named_numbers(body, &fire, &mut Vec::new()));
        // A long string where a number or a body belongs is not copied into the answer.
        let long = "x".repeat(1 << 20);
        for body in [
            format!(r#"{{"a": 1, "b": "{long}"}}"#),
            format!(r#""{long}""#),
            format!(r#"{{"instances": "{long}"}}"#),
        ] {
            let e = decode(Input::Json, body.as_bytes(), &schema(), false).unwrap_err();
            assert!(e.message().len() < 200, "{}", &e.message()[..200]);
        }
    }

    #[test]
    fn json_records_far_larger_than_the_model_are_refused_while_read() {
        let zeros = vec!["0"; 1_000_000].join(",");
        let line = format!("[1, 2]\n[{zeros}]\n");
        let e = decode(Input::JsonLines, line.as_bytes(), &schema(), true).unwrap_err();
        assert!(
            e.message().contains(
                "record 2 (line 2): a record holds far more values than the model's 2 features"
            ),
            "{}",
            e.message()
        );
        for body in [
            format!("{{\"instances\": [[{zeros}]]}}"),
            format!("{{\"junk\": [{zeros}], \"instances\": [[1, 2]]}}"),
            format!("[[1, 2], [{zeros}]]"),
        ] {
            let e = decode(Input::Json, body.as_bytes(), &schema(), false).unwrap_err();
            assert!(
                e.message()
                    .contains("holds far more values than the model's 2 features"),
                "{}",
                e.message()
            );
        }
        let ok = decode(
            Input::Json,
            br#"{"instances": [[1, 2], {"a": 3, "b": null}]}"#,
            &schema(),
            false,
        );
        assert!(ok.is_err(), "b is not allowed to be missing");
        let x = decode(
            Input::Json,
            br#"{"instances": [[1, 2], {"a": 3, "b": 4}]}"#,
            &schema(),
            false,
        )
        .unwrap();
        assert_eq!(x.as_slice().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn pieces_concatenate_to_the_whole_answer_and_its_counted_length() {
        let values = Array2::from_shape_fn((1000, 3), |(i, j)| (i * 3 + j) as f32 / 7.0);
        let p = TabularPredictions {
            values,
            classification: true,
            class_names: None,
        };
        for (format, batch) in [
            (Output::Json, false),
            (Output::Json, true),
            (Output::JsonLines, false),
            (Output::Csv, true),
        ] {
            let whole = encode(&p, format, batch);
            let mut pieces = Vec::new();
            encode_in_chunks(&p, format, batch, 100, |piece| {
                pieces.push(piece);
                true
            });
            assert!(pieces.len() > 10);
            assert_eq!(pieces.concat(), whole, "{format:?} {batch}");
            assert_eq!(encoded_len(&p, format, batch), whole.len());
        }
    }

    fn schema() -> Schema {
        Schema {
            feature_names: vec!["a".into(), "b".into()],
            derived: None,
            targets: vec![],
            allow_missing: false,
            categories: Vec::new(),
        }
    }

    fn rows(format: Input, body: &str) -> Result<Vec<f32>, ServeError> {
        decode(format, body.as_bytes(), &schema(), false).map(|a| a.into_raw_vec_and_offset().0)
    }

    #[test]
    fn categorical_features_are_read_by_name_in_every_text_format() {
        let schema = Schema {
            feature_names: vec!["city".into(), "size".into()],
            allow_missing: true,
            categories: vec![Some(categories::Categories::new(vec![
                "1.5".into(),
                "lyon".into(),
                "paris".into(),
            ]))],
            ..schema()
        };
        let decoded = |format: Input, body: &str| {
            decode(format, body.as_bytes(), &schema, false)
                .unwrap()
                .into_raw_vec_and_offset()
                .0
        };
        for (format, body) in [
            (Input::Csv, "paris,3\n\"lyon\",NA\nrome,1\n1.50,2\n"),
            (
                Input::Json,
                r#"{"instances": [{"city": "paris", "size": 3}, ["lyon", null], {"city": "rome", "size": 1}, [1.5, 2]]}"#,
            ),
            (
                Input::JsonLines,
                "{\"city\": \"paris\", \"size\": 3}\n[\"lyon\", \"NA\"]\n[\"rome\", 1]\n{\"city\": \"1.5\", \"size\": 2}\n",
            ),
        ] {
            let v = decoded(format, body);
            assert_eq!(v[0], 2.0, "{body}");
            assert_eq!((v[1], v[2]), (3.0, 1.0));
            assert!(v[3].is_nan() && !categories::is_unseen(v[3]), "{body}");
            // A name training never saw: missing, marked as unseen.
            assert!(categories::is_unseen(v[4]), "{body}");
            assert_eq!(&v[5..], [1.0, 0.0, 2.0], "{body}");
        }
        // A quoted name holding a comma is one field (as training reads it).
        let v = decoded(Input::Csv, "\"rome, it\",3\n");
        assert!(categories::is_unseen(v[0]) && v[1] == 3.0);
        // One record as a bare array whose first value is a name, not a number.
        assert_eq!(decoded(Input::Json, r#"["paris", 3]"#), [2.0, 3.0]);
        // libsvm and RecordIO carry numbers only: in a text column, the category of that name
        // (never a code), an absent value missing.
        let mut recordio = Vec::new();
        for row in [[1.5, 2.0], [2.0, 1.0], [f32::NAN, 4.0]] {
            common::data::recordio::write_features_record(&row, &mut recordio);
        }
        for v in [
            decoded(Input::Libsvm, "0:1.5 1:2\n0:2 1:1\n1:4\n"),
            decode(Input::RecordIo, &recordio, &schema, false)
                .unwrap()
                .into_raw_vec_and_offset()
                .0,
        ] {
            assert_eq!((v[0], v[1]), (0.0, 2.0));
            assert!(categories::is_unseen(v[2]) && v[3] == 1.0);
            assert!(v[4].is_nan() && !categories::is_unseen(v[4]) && v[5] == 4.0);
        }
        // Numeric features still take numbers only.
        let e = decode(Input::Csv, b"paris,big\n", &schema, false).unwrap_err();
        assert!(matches!(e, ServeError::BadRequest(m) if m.contains("value 2 is not a number")));
    }

    #[test]
    fn every_json_shape_decodes() {
        let one = vec![1.0, 2.0];
        for body in [
            r#"{"b": 2, "a": 1, "extra": "x"}"#,
            r#"{"features": {"a": 1, "b": "2"}}"#,
            r#"{"features": [1, 2]}"#,
            "[1, 2]",
            r#"["1", 2]"#,
        ] {
            assert_eq!(rows(Input::Json, body).unwrap(), one, "{body}");
        }
        let two = vec![1.0, 2.0, 3.0, 4.0];
        for body in [
            r#"{"instances": [{"a": 1, "b": 2}, [3, 4]]}"#,
            "[[1, 2], [3, 4]]",
            r#"[{"a":1,"b":2},{"features":{"a":3,"b":4}}]"#,
        ] {
            assert_eq!(rows(Input::Json, body).unwrap(), two, "{body}");
        }
        assert_eq!(
            rows(Input::JsonLines, "{\"a\":1,\"b\":2}\r\n[3,4]\n").unwrap(),
            two
        );
        assert_eq!(rows(Input::Csv, "1,2\r\n3, 4\n").unwrap(), two);
        assert_eq!(rows(Input::Libsvm, "0 0:1 1:2\n1:4 0:3\n").unwrap(), two);
        assert_eq!(rows(Input::Csv, "1,2").unwrap(), one);
    }

    #[test]
    fn bad_records_are_named() {
        let e = |f, b| match rows(f, b) {
            Err(ServeError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            e(Input::Csv, "1,2\n1\n"),
            "record 2 (line 2): expected 2 values, found 1"
        );
        assert_eq!(
            e(Input::Csv, "1,2,3\n"),
            "record 1 (line 1): expected 2 values, found 3"
        );
        // Blank lines are not records (outside batch mode): counted apart.
        assert_eq!(
            e(Input::Csv, "\n1,2\n\n1\n"),
            "record 2 (line 4): expected 2 values, found 1"
        );
        assert!(e(Input::JsonLines, "\n[1,2]\n{oops}\n").starts_with("record 2 (line 3): not JSON"));
        assert!(e(Input::Json, r#"["a", 2]"#).starts_with("record 1: "));
        assert!(e(Input::Csv, "a,b\n1,2\n")
            .contains("value 1 is not a number: \"a\" (CSV input has no header)"));
        assert!(e(Input::Csv, "1,\n").contains("value 2 is empty"));
        assert!(e(Input::Libsvm, "1 0:1 2:5\n")
            .contains("feature index 2 is beyond the model's 2 features"));
        assert!(e(Input::Libsvm, "1 0:1\n").contains("feature 1 ('b') is absent"));
        assert!(e(Input::Libsvm, "1 0:1 x\n").contains("'x' is not index:value"));
        assert_eq!(
            e(
                Input::Json,
                r#"{"instances": [{"a": 1, "b": 2}, {"a": 1}]}"#
            ),
            "record 2: missing feature 'b'"
        );
        assert!(e(Input::Json, r#"{"a": 1, "b": "hot"}"#)
            .contains("feature 'b' is not a number: \"hot\""));
        assert!(e(Input::Json, "{\"a\":").contains("not valid JSON"));
        assert!(e(Input::JsonLines, "[1,2]\n{oops}\n").starts_with("record 2 (line 2): not JSON"));
        assert!(e(Input::Csv, "  \n").contains("empty body"));
        assert!(
            matches!(decode(Input::Csv, b"1,2\n\n3,4\n", &schema(), true), Err(ServeError::BadRequest(m)) if m.contains("line 2 is empty"))
        );
    }

    #[test]
    fn a_body_after_a_byte_order_mark_is_guessed_by_its_first_character() {
        assert_eq!(
            input_format(None, b"\xEF\xBB\xBF{\"a\": 1}").unwrap(),
            Input::Json
        );
        assert_eq!(
            input_format(None, b"\xEF\xBB\xBF [[1]]").unwrap(),
            Input::Json
        );
        assert_eq!(input_format(None, b"\xEF\xBB\xBF1,2").unwrap(), Input::Csv);
    }

    #[test]
    fn media_types() {
        assert_eq!(
            input_format(Some("Text/CSV; charset=utf-8"), b"").unwrap(),
            Input::Csv
        );
        assert_eq!(
            input_format(Some("application/JSONLINES"), b"").unwrap(),
            Input::JsonLines
        );
        assert_eq!(input_format(None, b" {\"a\":1}").unwrap(), Input::Json);
        assert_eq!(input_format(None, b"1,2").unwrap(), Input::Csv);
        assert_eq!(
            input_format(Some("text/x-libsvm"), b"").unwrap(),
            Input::Libsvm
        );
        assert!(matches!(
            input_format(Some("application/x-parquet"), b""),
            Err(ServeError::UnsupportedMediaType(_))
        ));
        let d = "application/json";
        assert_eq!(output_format(None, d).unwrap(), Output::Json);
        assert_eq!(output_format(Some("*/*"), "text/csv").unwrap(), Output::Csv);
        assert_eq!(
            output_format(
                Some("text/html, text/csv;q=0.5, application/jsonlines;q=0.9"),
                d
            )
            .unwrap(),
            Output::JsonLines
        );
        assert_eq!(output_format(Some("TEXT/CSV"), d).unwrap(), Output::Csv);
        assert!(matches!(
            output_format(Some("text/html"), d),
            Err(ServeError::NotAcceptable(_))
        ));
        assert!(matches!(
            output_format(Some("text/csv;q=0"), d),
            Err(ServeError::NotAcceptable(_))
        ));
    }

    #[test]
    fn encodings_have_one_line_per_record_in_batch() {
        let members = ["random_forest", "logistic_regression"];
        let mp = vec![vec![0.9f32, 0.2], vec![0.7, 0.4]];
        let p = FirePredictions {
            members: members.to_vec(),
            member_probabilities: mp,
            probabilities: vec![0.8, 0.25],
            threshold: 0.5,
        };
        assert_eq!(
            encode(&p, Output::Csv, false),
            "1,0.8,0.9,0.7\n0,0.25,0.2,0.4\n"
        );
        let json: Value = serde_json::from_str(&encode(&p, Output::Json, false)).unwrap();
        assert_eq!(json["predictions"][0]["ensemble_prediction"], 1);
        assert_eq!(
            json["predictions"][1]["individual_probabilities"]["logistic_regression"]
                .as_f64()
                .unwrap() as f32,
            0.4
        );
        assert_eq!(
            json["predictions"][0]["individual_predictions"]["random_forest"],
            1
        );
        let lines = encode(&p, Output::Json, true);
        assert_eq!(lines.lines().count(), 2);
        assert!(lines.ends_with('\n'));
        for l in lines.lines() {
            serde_json::from_str::<Value>(l).unwrap();
        }
    }
}
