//! Keys the serving layer adds to any kind's answers (`out_of_range` for every kind trained
//! here, `contributions` for the kinds whose explanations are not among their own keys): JSON
//! and JSON Lines records gain `"key": value` before their closing brace, a CSV line one last
//! field.

use super::Predictions;
use crate::data::number::push_f32;
use ndarray::Array2;
use std::fmt::Write;

/// One added key's value per record.
pub trait AddedKey: Send {
    /// The key's name in JSON answers.
    fn key(&self) -> &'static str;
    /// Appends record `i`'s value as JSON.
    fn json_value(&self, i: usize, out: &mut String);
    /// Appends record `i`'s value as one CSV field.
    fn csv_field(&self, i: usize, out: &mut String);
}

/// Predictions whose every record also answers one added key.
pub struct WithKey {
    inner: Box<dyn Predictions>,
    added: Box<dyn AddedKey>,
}

impl WithKey {
    /// `inner`'s answers with `added`'s key.
    pub fn new(inner: Box<dyn Predictions>, added: Box<dyn AddedKey>) -> Self {
        Self { inner, added }
    }
}

impl Predictions for WithKey {
    fn records(&self) -> usize {
        self.inner.records()
    }

    fn json_record(&self, i: usize, out: &mut String) {
        let start = out.len();
        self.inner.json_record(i, out);
        // The record is one object: the key goes before its closing brace.
        if out.ends_with('}') {
            out.pop();
            if !out[start..].ends_with('{') {
                out.push(',');
            }
        } else {
            out.truncate(start);
            out.push('{');
        }
        let _ = write!(out, "\"{}\":", self.added.key());
        self.added.json_value(i, out);
        out.push('}');
    }

    fn csv_record(&self, i: usize, out: &mut String) {
        self.inner.csv_record(i, out);
        out.push(',');
        self.added.csv_field(i, out);
    }

    fn first_non_finite(&self) -> Option<usize> {
        self.inner.first_non_finite()
    }
}

/// Most contribution values one answer holds (64 MiB of floats; the JSON text is larger).
pub const MAX_EXPLAINED_VALUES: usize = 16 << 20;

/// Rows explained between two looks at the request's deadline: a deep forest explains a row in
/// tens of milliseconds, so a large request stops within a second or two of its deadline
/// rather than computing on, unseen, after its 504 (holding a worker, and a multi-model
/// endpoint's unload of the model).
const EXPLAINED_ROWS_PER_CHECK: usize = 16;

/// What explaining answers once the request's deadline has passed.
pub const DEADLINE_PASSED: &str = "the request's deadline passed while its records were explained";

/// `contributions` of `x`'s rows, computed `EXPLAINED_ROWS_PER_CHECK` (16) rows at a time until
/// `deadline` passes ([`DEADLINE_PASSED`]).
pub fn explained_by_deadline(
    x: ndarray::ArrayView2<f32>,
    deadline: Option<std::time::Instant>,
    contributions: impl Fn(ndarray::ArrayView2<f32>) -> Result<ndarray::Array2<f32>, String>,
) -> Result<ndarray::Array2<f32>, String> {
    let passed = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
    if deadline.is_none() || x.nrows() <= EXPLAINED_ROWS_PER_CHECK {
        return if passed() {
            Err(DEADLINE_PASSED.into())
        } else {
            contributions(x)
        };
    }
    let mut blocks = Vec::new();
    for rows in x.axis_chunks_iter(ndarray::Axis(0), EXPLAINED_ROWS_PER_CHECK) {
        if passed() {
            return Err(DEADLINE_PASSED.into());
        }
        blocks.push(contributions(rows)?);
    }
    let views: Vec<_> = blocks.iter().map(ndarray::Array2::view).collect();
    ndarray::concatenate(ndarray::Axis(0), &views).map_err(|e| e.to_string())
}

/// Per record, the contributions of its features and the bias (a list; JSON an array, CSV a
/// quoted list as the built-in's list keys are).
pub struct Contributions(pub Array2<f32>);

impl AddedKey for Contributions {
    fn key(&self) -> &'static str {
        "contributions"
    }

    fn json_value(&self, i: usize, out: &mut String) {
        out.push('[');
        for (k, &v) in self.0.row(i).iter().enumerate() {
            out.push_str(if k == 0 { "" } else { "," });
            push_f32(out, v);
        }
        out.push(']');
    }

    fn csv_field(&self, i: usize, out: &mut String) {
        out.push_str("\"[");
        for (k, &v) in self.0.row(i).iter().enumerate() {
            out.push_str(if k == 0 { "" } else { ", " });
            push_f32(out, v);
        }
        out.push_str("]\"");
    }
}
