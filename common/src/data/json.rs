//! JSON and JSON Lines training data: the original layout's samples array in batches on every
//! core, anything else as a stream.
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
use std::io::{BufRead, Read};

/// Parses every JSON value in `reader` into `sink`; `source` names the file in errors.
///
/// A file that starts `{"samples": [` has that array parsed in batches on every core
/// (`split`); everything else is read by one deserializer through a `BufReader` it owns (std
/// reads such a reader byte by byte from its buffer, where any other reader costs a `read` call
/// per byte). Errors name the file's line and column either way.
pub fn parse(
    mut reader: impl BufRead,
    schema: &Schema,
    source: &str,
    sink: &mut RowSink,
) -> Result<()> {
    let mut head = Vec::new();
    if samples_array_opens(&mut reader, &mut head).map_err(|e| Error::io(source, e))? {
        let lines = head.iter().filter(|&&b| b == b'\n').count();
        let column = head.iter().rev().take_while(|&&b| b != b'\n').count();
        let at = Position {
            lines,
            column,
            records: 0,
        };
        return split::parse_samples(reader, at, schema, source, sink);
    }
    let start = (Position::default(), 0);
    parse_values(head.as_slice().chain(reader), schema, source, sink, start)
}

/// Parses every JSON value of `reader` (which starts at `at` in the file) into `sink` with the
/// serde visitors.
fn parse_values(
    reader: impl Read,
    schema: &Schema,
    source: &str,
    sink: &mut RowSink,
    (at, prefix): (Position, usize),
) -> Result<()> {
    let mut ctx = Ctx {
        schema,
        sink,
        row: Row::new(schema.feature_names.len(), schema.targets.len()),
        records: at.records,
    };
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, reader));
    // `end` succeeds at the end of the input (only whitespace left); otherwise a value follows.
    while de.end().is_err() {
        TopSeed(&mut ctx)
            .deserialize(&mut de)
            .map_err(|e| located(source, &e, at, prefix))?;
    }
    Ok(())
}

/// Where a piece of a file starts: newlines, bytes on its line and records before it.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    lines: usize,
    column: usize,
    records: usize,
}

/// Turns a serde_json error into a data error naming the file's line and column, for a piece
/// that starts at `at` and was parsed behind `prefix` bytes of its own.
fn located(source: &str, e: &serde_json::Error, at: Position, prefix: usize) -> Error {
    let text = e.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    let column = if e.line() <= 1 {
        (at.column + e.column()).saturating_sub(prefix)
    } else {
        e.column()
    };
    Error::Data(format!(
        "{source}: line {} column {column}: {message}",
        at.lines + e.line().max(1)
    ))
}

/// JSON's whitespace (not `is_ascii_whitespace`, which also takes a form feed).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether `reader` starts with the original layout's `{"samples": [` (whitespace allowed
/// between the tokens); the bytes read are kept in `head` either way.
fn samples_array_opens(reader: &mut impl BufRead, head: &mut Vec<u8>) -> std::io::Result<bool> {
    const TOKENS: [&[u8]; 4] = [b"{", b"\"samples\"", b":", b"["];
    for token in TOKENS {
        let mut matched = 0;
        while matched < token.len() {
            let Some(&b) = reader.fill_buf()?.first() else {
                return Ok(false);
            };
            if matched == 0 && is_json_space(b) {
                head.push(b);
                reader.consume(1);
                continue;
            }
            if b != token[matched] {
                return Ok(false);
            }
            head.push(b);
            reader.consume(1);
            matched += 1;
        }
    }
    Ok(true)
}

/// The original layout's samples array parsed on every core: the array is cut at commas
/// between samples into batches of a few MB (a scanner that follows strings and nesting finds
/// them), each batch is parsed by the same visitors from memory (serde_json reads a slice
/// several times faster than a stream), and the batches' rows are appended in file order.
/// What follows the array (the demo layout's `"features"`, more values) is parsed as usual.
/// Every byte of the array is in one batch and parsed strictly; what the cuts drop (the comma
/// between batches) is checked by the scanner: a batch of whitespace alone is an error.
mod split {
    use super::{
        is_json_space, located, parse_values, Ctx, Position, Row, RowSink, SamplesSeed, Schema,
    };
    use crate::error::{Error, Result};
    use serde::de::DeserializeSeed;
    use std::io::{BufRead, Read};
    use std::sync::mpsc;

    /// Bytes of samples per batch (a few hundred in unit tests, so they cut many batches).
    const BATCH_BYTES: usize = if cfg!(test) { 300 } else { 4 << 20 };

    /// A batch past this many bytes holds no cut: the array is malformed (a brace or a quote
    /// out of place), and the batch is parsed at once to say where, rather than the whole file
    /// read into memory.
    const MAX_BATCH_BYTES: usize = 16 * BATCH_BYTES;

    /// A batch of whole samples, comma-separated, and where it starts.
    struct Batch {
        index: usize,
        at: Position,
        /// `[`, the samples and `]` (none when the file ended inside the array).
        bytes: Vec<u8>,
        /// Whether it holds anything but whitespace.
        content: bool,
    }

    impl Batch {
        fn new(index: usize, at: Position) -> Self {
            let mut bytes = Vec::with_capacity(if index == 0 { 64 << 10 } else { BATCH_BYTES });
            bytes.push(b'[');
            Self {
                index,
                at,
                bytes,
                content: false,
            }
        }
    }

    /// Follows strings and nesting through the array's bytes.
    #[derive(Default)]
    struct Scanner {
        depth: usize,
        in_string: bool,
        escaped: bool,
        at: Position,
    }

    /// What a byte of the array is to the scanner.
    enum Seen {
        /// A comma between two samples.
        Separator,
        /// The `]` closing the array.
        End,
        Other,
    }

    impl Scanner {
        fn step(&mut self, b: u8) -> Seen {
            if b == b'\n' {
                self.at.lines += 1;
                self.at.column = 0;
            } else {
                self.at.column += 1;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                return Seen::Other;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    if self.depth == 0 {
                        self.at.records += 1;
                    }
                    self.depth += 1;
                }
                b'}' | b']' if self.depth > 0 => self.depth -= 1,
                b']' => return Seen::End,
                b',' if self.depth == 0 => return Seen::Separator,
                _ => {}
            }
            Seen::Other
        }
    }

    /// Parses the samples after `{"samples": [` (already read; the samples start at `at`) and
    /// the rest of `reader`.
    pub(super) fn parse_samples(
        mut reader: impl BufRead,
        at: Position,
        schema: &Schema,
        source: &str,
        sink: &mut RowSink,
    ) -> Result<()> {
        let threads = crate::parallel::cores().min(4);
        let (batches_tx, batches_rx) = mpsc::sync_channel::<Batch>(threads);
        let batches_rx = std::sync::Mutex::new(batches_rx);
        let (rows_tx, rows_rx) = mpsc::channel::<(usize, Result<RowSink>)>();
        let scanned = std::thread::scope(|s| {
            for _ in 0..threads {
                let (batches_rx, rows_tx) = (&batches_rx, rows_tx.clone());
                s.spawn(move || loop {
                    let next = batches_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(batch)) = next else { break };
                    let _ = rows_tx.send((batch.index, parse_contained(&batch, schema, source)));
                });
            }
            drop(rows_tx);
            let scanned = scan(&mut reader, at, &batches_tx, schema, source);
            drop(batches_tx);
            scanned
        });
        let mut parsed: Vec<(usize, Result<RowSink>)> = rows_rx.into_iter().collect();
        parsed.sort_by_key(|(index, _)| *index);
        let mut batches = Vec::with_capacity(parsed.len());
        for (_, rows) in parsed {
            batches.push(rows?); // the first error in file order
        }
        let rest_at = scanned?;
        sink.append_all(batches);
        // The object the array was in, and anything after it, as the rest of a file.
        const REST: &[u8] = b"{\"samples\":[]";
        parse_values(
            REST.chain(reader),
            schema,
            source,
            sink,
            (rest_at, REST.len()),
        )
    }

    /// Cuts the array into batches until its `]`; returns where the rest of the file starts.
    fn scan(
        reader: &mut impl BufRead,
        at: Position,
        batches: &mpsc::SyncSender<Batch>,
        schema: &Schema,
        source: &str,
    ) -> Result<Position> {
        let mut scanner = Scanner {
            at,
            ..Scanner::default()
        };
        let mut batch = Batch::new(0, at);
        let missing_sample = |scanner: &Scanner| {
            Error::Data(format!(
                "{source}: line {} column {}: expected a sample before ',' or ']' (a comma too many)",
                scanner.at.lines + 1,
                scanner.at.column
            ))
        };
        loop {
            let block = reader.fill_buf().map_err(|e| Error::io(source, e))?;
            if block.is_empty() {
                // The file ends inside the array: parsed as it is, the batch says where.
                let _ = batches.send(batch);
                return Ok(scanner.at);
            }
            // Bytes are copied a run at a time: from `start` to a cut, or to the block's end.
            let (mut start, mut used, mut ended) = (0, block.len(), false);
            for (i, &b) in block.iter().enumerate() {
                let seen = scanner.step(b);
                if !is_json_space(b) && matches!(seen, Seen::Other) {
                    batch.content = true;
                }
                match seen {
                    Seen::Separator if batch.bytes.len() + (i - start) >= BATCH_BYTES => {
                        if !batch.content {
                            return Err(missing_sample(&scanner));
                        }
                        batch.bytes.extend_from_slice(&block[start..i]);
                        batch.bytes.push(b']');
                        let next = Batch::new(batch.index + 1, scanner.at);
                        let _ = batches.send(std::mem::replace(&mut batch, next));
                        start = i + 1;
                    }
                    Seen::End => {
                        (used, ended) = (i + 1, true);
                        break;
                    }
                    _ => {}
                }
            }
            let run_end = if ended { used - 1 } else { used };
            batch.bytes.extend_from_slice(&block[start..run_end]);
            reader.consume(used);
            if ended {
                // `[]` is an empty array; after a cut, an empty last batch was a comma too many.
                if !batch.content && batch.index > 0 {
                    return Err(missing_sample(&scanner));
                }
                batch.bytes.push(b']');
                let _ = batches.send(batch);
                return Ok(scanner.at);
            }
            if batch.bytes.len() > MAX_BATCH_BYTES {
                // No cut for this long: malformed. Parsed now, the batch names the place.
                parse_batch(&batch, schema, source)?;
                return Err(Error::Data(format!(
                    "{source}: line {}: a sample over {} MB, or a brace or quote out of place",
                    batch.at.lines + 1,
                    MAX_BATCH_BYTES >> 20
                )));
            }
        }
    }

    /// [`parse_batch`], with a panic made this batch's error (a worker gone would leave the
    /// scanner waiting on it).
    fn parse_contained(batch: &Batch, schema: &Schema, source: &str) -> Result<RowSink> {
        crate::contain::contained(|| parse_batch(batch, schema, source))
            .unwrap_or_else(|why| Err(Error::Data(format!("{source}: parsing failed: {why}"))))
    }

    /// The rows of one batch, parsed from memory as the array it holds.
    fn parse_batch(batch: &Batch, schema: &Schema, source: &str) -> Result<RowSink> {
        let mut rows = RowSink::default();
        let mut ctx = Ctx {
            schema,
            sink: &mut rows,
            row: Row::new(schema.feature_names.len(), schema.targets.len()),
            records: batch.at.records,
        };
        let mut de = serde_json::Deserializer::from_slice(&batch.bytes);
        SamplesSeed(&mut ctx)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| located(source, &e, batch.at, 1))?;
        Ok(rows)
    }
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
                Positional::Value(v) if i < n => {
                    // The rule named features follow: finite in 32-bit floats.
                    let v = super::number::checked(v)
                        .map_err(|e| de::Error::custom(format!("features value {} {e}", i + 1)))?;
                    ctx.row.set(i, v)
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows or the error, through the parallel path when the text starts with the
    /// samples array.
    fn parsed(text: &str) -> std::result::Result<RowSink, String> {
        let mut sink = RowSink::default();
        parse(
            text.as_bytes(),
            &crate::kinds::fire::schema(),
            "f.json",
            &mut sink,
        )
        .map(|()| sink)
        .map_err(|e| e.to_string())
    }

    /// The same through the stream path alone.
    fn streamed(text: &str) -> std::result::Result<RowSink, String> {
        let mut sink = RowSink::default();
        let schema = crate::kinds::fire::schema();
        parse_values(
            text.as_bytes(),
            &schema,
            "f.json",
            &mut sink,
            (Position::default(), 0),
        )
        .map(|()| sink)
        .map_err(|e| e.to_string())
    }

    fn sample(i: usize, extra: &str) -> String {
        let features: Vec<String> = crate::kinds::fire::FEATURE_NAMES
            .iter()
            .enumerate()
            .map(|(k, n)| format!("\"{n}\": {}.{k}", i * 3 + k))
            .collect();
        format!(
            "{{\"id\": \"s{i}\"{extra}, \"features\": {{{}}},\n  \"label\": {}}}",
            features.join(", "),
            i % 2
        )
    }

    #[test]
    fn the_samples_array_in_batches_gives_the_stream_parsers_rows() {
        // Strings holding brackets, commas and escaped quotes; nested objects; pretty-printing;
        // the demo layout's names after the array; more values after the object.
        let tricky = [
            r#", "note": "a \"]},{\" b""#,
            r#", "meta": {"x": [1, {"y": "[,]"}]}"#,
            "",
        ];
        let samples: Vec<String> = (0..40).map(|i| sample(i, tricky[i % 3])).collect();
        let text = format!(
            "\n {{ \"samples\" :\n [\n{}\n ],\n \"features\": [\"t_mean\"]}}\n{}\n",
            samples.join(",\n"),
            sample(40, "")
        );
        let (fast, slow) = (parsed(&text).unwrap(), streamed(&text).unwrap());
        assert_eq!(fast.rows, 41);
        assert_eq!((fast.features, fast.labels), (slow.features, slow.labels));
    }

    #[test]
    fn what_the_stream_parser_refuses_the_batches_refuse_too() {
        let samples: Vec<String> = (0..6).map(|i| sample(i, "")).collect();
        let one_line: Vec<String> = samples.iter().map(|s| s.replace('\n', " ")).collect();
        let cases = [
            // A comma too many where a cut falls (samples of about 450 bytes, batches of 300).
            format!("{{\"samples\": [{}, ]}}", samples[..2].join(", ")),
            format!("{{\"samples\": [{},\n\n,{}]}}", samples[0], samples[1]),
            format!("{{\"samples\": [{}]}}", samples.join(",,")),
            // A form feed is not JSON whitespace.
            format!("\x0c{{\"samples\": [{}]}}", samples[0]),
            // A sample that is not an object, a label out of range on one long line.
            format!("{{\"samples\": [{}, 5]}}", samples[0]),
            format!(
                "{{\"samples\": [{}]}}",
                one_line.join(", ").replace("\"label\": 1", "\"label\": 7")
            ),
        ];
        for text in &cases {
            let slow = streamed(text).map(|r| r.rows);
            let fast = parsed(text).map(|r| r.rows);
            assert!(
                slow.is_err() && fast.is_err(),
                "{text:.80}: {fast:?} / {slow:?}"
            );
        }
        // Errors on one long line (`json.dump` writes one) name the same column.
        let text = &cases[5];
        assert_eq!(parsed(text).unwrap_err(), streamed(text).unwrap_err());
        // An empty array, and one sample.
        assert_eq!(parsed("{\"samples\": []}").unwrap().rows, 0);
        let text = format!("{{\"samples\": [{}]}}", samples[0]);
        assert_eq!(
            parsed(&text).unwrap().features,
            streamed(&text).unwrap().features
        );
    }

    #[test]
    fn positional_features_are_finite_in_f32_as_named_ones() {
        let sample = |first: &str| {
            let rest: Vec<String> = (1..18).map(|k| format!("{k}.5")).collect();
            let values = format!("{first}, {}", rest.join(", "));
            format!("{{\"samples\": [{{\"features\": [{values}], \"label\": 1}}]}}")
        };
        assert_eq!(streamed(&sample("2")).unwrap().rows, 1);
        for bad in ["1e39", "\"NaN\"", "\"inf\""] {
            for e in [streamed(&sample(bad)), parsed(&sample(bad))] {
                let e = e.map(|r| r.rows).unwrap_err();
                assert!(e.contains("features value 1 is"), "{bad}: {e}");
            }
        }
    }

    #[test]
    fn errors_name_the_same_line_and_sample_as_the_stream_parser() {
        let mut samples: Vec<String> = (0..30).map(|i| sample(i, "")).collect();
        samples[23] = samples[23].replace("\"label\": 1", "\"label\": 7");
        let text = format!("{{\"samples\": [\n{}\n]}}", samples.join(",\n"));
        let (fast, slow) = (parsed(&text).unwrap_err(), streamed(&text).unwrap_err());
        assert!(
            fast.contains("sample 24") && fast.contains("line 49"),
            "{fast}"
        );
        assert_eq!(fast, slow);
        // Cut short (inside a sample, after the array, before the object's end): an error
        // with its place, never the rows read so far.
        let whole = format!("{{\"samples\": [{}]}}", samples[..3].join(","));
        for cut in [whole.len() - 2, whole.len() - 1, whole.len() / 2] {
            let e = parsed(&whole[..cut]).unwrap_err();
            assert!(e.contains("f.json: line "), "{cut}: {e}");
        }
    }
}
