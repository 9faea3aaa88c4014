//! JSON and JSON Lines training data, parsed as a stream.
//!
//! Accepted shapes, freely mixed in one file as consecutive JSON values:
//! - the original layout `{"samples": [{"features": {...}, "label": 0}, ...]}`, with or without
//!   the demo layout's extra top-level `"features": [names]` and per-sample `"id"`;
//! - a bare array of samples;
//! - one sample per value (JSON Lines), flat (`{"t_mean": 1, ..., "label": 0}`) or wrapped
//!   (`{"features": {...}, "label": 0}`); `features` may also be an array of values in model order.
//!
//! Samples go straight from the byte stream into the [`RowSink`] through serde visitors, so a
//! 150 MB file never becomes a document tree; memory is the rows themselves.

use super::{RowSink, Schema};
use crate::error::{Error, Result};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::BufRead;

/// Parses every JSON value in `reader` into `sink`; `source` names the file in errors.
///
/// One deserializer reads all the values, so its line numbers are the file's. It reads through
/// a `BufReader` it owns: std reads such a reader byte by byte from its buffer, where any other
/// reader costs a `read` call per byte (the 147 MB fire mix: 1.5 s before).
pub fn parse(
    reader: impl BufRead,
    schema: &Schema,
    source: &str,
    sink: &mut RowSink,
) -> Result<()> {
    let mut ctx = Ctx {
        schema,
        sink,
        row: Row::new(schema.feature_names.len(), schema.targets.len()),
        records: 0,
    };
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, reader));
    // `end` succeeds at the end of the input (only whitespace left); otherwise a value follows.
    while de.end().is_err() {
        TopSeed(&mut ctx)
            .deserialize(&mut de)
            .map_err(|e| located(source, &e))?;
    }
    Ok(())
}

/// Turns a serde_json error into a data error naming the file and the line.
fn located(source: &str, e: &serde_json::Error) -> Error {
    let text = e.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    Error::Data(format!(
        "{source}: line {} column {}: {message}",
        e.line(),
        e.column()
    ))
}

/// Parsing state shared by the visitors.
struct Ctx<'a> {
    schema: &'a Schema,
    sink: &'a mut RowSink,
    row: Row,
    records: usize,
}

impl Ctx<'_> {
    /// Checks the current row, computes derived features and moves it into the sink.
    fn finish_row<E: de::Error>(&mut self) -> Result<(), E> {
        self.records += 1;
        let records = self.records;
        let row = &mut self.row;
        let seen = &row.seen;
        self.schema
            .complete_row(&mut row.values, |i| seen[i])
            .map_err(|m| E::custom(format!("sample {records} is {m}")))?;
        for (label, target) in row.labels.iter().zip(&self.schema.targets) {
            let value = label.clone().ok_or_else(|| {
                E::custom(format!("sample {records} has no '{}' field", target.name()))
            })?;
            let y = match value {
                LabelValue::Number(v) => target.from_number(v),
                LabelValue::Text(t) => target.from_text(&t),
            }
            .map_err(|m| E::custom(format!("sample {records}: {m}")))?;
            self.sink.labels.push(y);
        }
        self.sink.features.extend_from_slice(&row.values);
        self.sink.rows += 1;
        row.reset();
        Ok(())
    }
}

/// One sample being assembled.
struct Row {
    values: Vec<f32>,
    seen: Vec<bool>,
    labels: Vec<Option<LabelValue>>,
    touched: bool,
}

impl Row {
    fn new(n: usize, targets: usize) -> Self {
        Self {
            values: vec![f32::NAN; n],
            seen: vec![false; n],
            labels: vec![None; targets],
            touched: false,
        }
    }

    fn reset(&mut self) {
        self.values.fill(f32::NAN);
        self.seen.fill(false);
        self.labels.fill(None);
        self.touched = false;
    }

    fn set(&mut self, i: usize, v: f64) {
        self.values[i] = v as f32;
        self.seen[i] = true;
        self.touched = true;
    }

    fn any_label(&self) -> bool {
        self.labels.iter().any(Option::is_some)
    }
}

/// What a key of a record object means.
enum Key {
    Samples,
    Features,
    Target(usize),
    Feature(usize),
    Other,
}

struct KeySeed<'s>(&'s Schema);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
        Ok(match k {
            "samples" => Key::Samples,
            "features" => Key::Features,
            _ => match self.0.target_index(k) {
                Some(t) => Key::Target(t),
                None => self.0.feature_index(k).map_or(Key::Other, Key::Feature),
            },
        })
    }
}

/// A top-level value: a record (possibly holding `samples`) or an array of samples.
struct TopSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (a sample or {\"samples\": [...]}) or an array of samples")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        RecordSeed {
            ctx: self.0,
            top_level: true,
        }
        .visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        SamplesSeed(self.0).visit_seq(seq)
    }
}

/// The `samples` array.
struct SamplesSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for SamplesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SamplesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of samples")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RecordSeed {
                ctx: &mut *self.0,
                top_level: false,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One sample object; at top level it may instead (or also) hold the `samples` array.
struct RecordSeed<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let mut saw_samples = false;
        while let Some(key) = map.next_key_seed(KeySeed(ctx.schema))? {
            match key {
                Key::Samples if self.top_level => {
                    saw_samples = true;
                    map.next_value_seed(SamplesSeed(&mut *ctx))?;
                }
                Key::Features => map.next_value_seed(FeaturesSeed(&mut *ctx))?,
                Key::Target(t) => ctx.row.labels[t] = Some(map.next_value::<LabelValue>()?),
                Key::Feature(i) => {
                    let v = map.next_value_seed(NumberSeed(&ctx.schema.feature_names[i]))?;
                    ctx.row.set(i, v);
                }
                Key::Samples | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if ctx.row.touched || ctx.row.any_label() || !saw_samples {
            ctx.finish_row()?;
        }
        Ok(())
    }
}

/// A sample's `features`: an object of named values, an array of values in model order, or (the
/// demo layout's top-level list) an array of names, which is ignored.
struct FeaturesSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of named feature values or an array of values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        while let Some(key) = map.next_key_seed(KeySeed(ctx.schema))? {
            match key {
                Key::Feature(i) => {
                    let v = map.next_value_seed(NumberSeed(&ctx.schema.feature_names[i]))?;
                    ctx.row.set(i, v);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        ctx.row.touched = true;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let n = ctx.schema.feature_names.len();
        let mut i = 0;
        while let Some(item) = seq.next_element::<Positional>()? {
            match item {
                Positional::Name => {}
                Positional::Value(v) if i < n => ctx.row.set(i, v),
                Positional::Value(_) => {}
            }
            i += 1;
        }
        if ctx.row.touched && i != n {
            return Err(de::Error::custom(format!(
                "features array holds {i} values, expected {n}"
            )));
        }
        Ok(())
    }
}

/// An element of a `features` array: a value, or a name (the demo layout's list of names).
enum Positional {
    Value(f64),
    Name,
}

impl<'de> de::Deserialize<'de> for Positional {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Positional;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Positional, E> {
                Ok(Positional::Value(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Positional, E> {
                Ok(Positional::Value(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Positional, E> {
                Ok(Positional::Value(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Positional, E> {
                Ok(v.trim().parse().map_or(Positional::Name, Positional::Value))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number field; also accepts booleans (labels) and numeric strings. `0` names it in errors.
struct NumberSeed<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for NumberSeed<'_> {
    type Value = f64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for NumberSeed<'_> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a number for '{}'", self.0)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        super::number::checked(v).map_err(|e| E::custom(format!("'{}' {e}", self.0)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<f64, E> {
        Ok(if v { 1.0 } else { 0.0 })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        super::number::parse(v).map_err(|e| E::custom(format!("'{}' {e}", self.0)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Err(E::custom(format!("'{}' is null", self.0)))
    }
}

/// A label as written: a number (or boolean), or text such as a class name.
#[derive(Debug, Clone)]
enum LabelValue {
    Number(f64),
    Text(String),
}

impl<'de> de::Deserialize<'de> for LabelValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LabelValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label: a number, a boolean or a class name")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LabelValue, E> {
                Ok(LabelValue::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LabelValue, E> {
                Ok(LabelValue::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LabelValue, E> {
                Ok(LabelValue::Number(v as f64))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LabelValue, E> {
                Ok(LabelValue::Number(if v { 1.0 } else { 0.0 }))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LabelValue, E> {
                Ok(LabelValue::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
