//! SageMaker's `application/x-recordio-protobuf`: MXNet RecordIO framing around protobuf
//! `Record` messages (AWS's `record.proto`), the features under the key `values` as a dense or
//! sparse tensor of float32 (float64 and int32 read too). Only what reading features needs is
//! decoded; other fields are skipped.
//!
//! Framing: each record is the magic `0xced7230a` (little-endian u32), a u32 whose low 29 bits are
//! the length and high 3 bits a continuation flag (0 whole; 1, 2, 3 first, middle, last part of a
//! record split where its data held the magic, which joins the parts again), the data, and zero
//! padding to 4 bytes.

/// The RecordIO magic number.
pub const MAGIC: u32 = 0xced7_230a;

/// The records of a RecordIO body, each as its protobuf bytes.
pub fn split(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    Records::new(body).collect()
}

/// The records of a RecordIO stream, read one at a time (a training file is never held whole).
pub struct Records<R> {
    reader: R,
    /// Bytes read so far, for messages.
    at: u64,
}

impl<R: std::io::Read> Records<R> {
    /// Records read from `reader`.
    pub fn new(reader: R) -> Self {
        Self { reader, at: 0 }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of the stream.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<bool, String> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) if got == 0 && what == "header" => return Ok(false),
                Ok(0) => return Err(format!("RecordIO: truncated {what} at byte {}", self.at)),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("RecordIO: read failed at byte {}: {e}", self.at)),
            }
        }
        self.at += buf.len() as u64;
        Ok(true)
    }

    /// The next part: its continuation flag and data, or `None` at the end.
    fn part(&mut self) -> Result<Option<(u32, Vec<u8>)>, String> {
        use std::io::Read;
        let start = self.at;
        let mut header = [0u8; 8];
        if !self.fill(&mut header, "header")? {
            return Ok(None);
        }
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if word(0) != MAGIC {
            return Err(format!(
                "RecordIO: no record starts at byte {start} (expected the magic number 0xced7230a)"
            ));
        }
        let (flag, len) = (word(4) >> 29, u64::from(word(4) & ((1 << 29) - 1)));
        // Read as it arrives: a corrupt length fails at the end of the stream, not in malloc.
        let mut data = Vec::new();
        let got = (&mut self.reader)
            .take(len)
            .read_to_end(&mut data)
            .map_err(|e| format!("RecordIO: read failed at byte {}: {e}", self.at))?;
        if got as u64 != len {
            return Err(format!(
                "RecordIO: the record at byte {start} runs past the body"
            ));
        }
        self.at += len;
        // Padding to 4 bytes (read to its end: a buffered reader may hand it over in parts);
        // the last record's may be missing.
        let padding = (4 - len % 4) % 4;
        let mut pad = Vec::with_capacity(3);
        (&mut self.reader)
            .take(padding)
            .read_to_end(&mut pad)
            .map_err(|e| format!("RecordIO: read failed at byte {}: {e}", self.at))?;
        self.at += pad.len() as u64;
        Ok(Some((flag, data)))
    }

    fn next_record(&mut self) -> Result<Option<Vec<u8>>, String> {
        let Some((flag, mut record)) = self.part()? else {
            return Ok(None);
        };
        match flag {
            0 => return Ok(Some(record)),
            1 => {}
            _ => return Err(format!("RecordIO: misplaced continuation flag {flag}")),
        }
        loop {
            match self.part()? {
                Some((flag @ (2 | 3), data)) => {
                    record.extend_from_slice(&MAGIC.to_le_bytes());
                    record.extend_from_slice(&data);
                    if flag == 3 {
                        return Ok(Some(record));
                    }
                }
                Some((flag, _)) => {
                    return Err(format!("RecordIO: misplaced continuation flag {flag}"))
                }
                None => return Err("RecordIO: the last record is unfinished".into()),
            }
        }
    }
}

impl<R: std::io::Read> Iterator for Records<R> {
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Appends one RecordIO-framed `Record` whose `label` map holds `labels` (name, float32 values),
/// as SageMaker's built-in algorithms answer in `application/x-recordio-protobuf`.
pub fn write_label_record(labels: &[(&str, &[f32])], out: &mut Vec<u8>) {
    write_map_record(LABEL, labels, out);
}

/// Appends one RecordIO-framed `Record` whose features are `values` (a dense float32 tensor
/// under `values`), as SageMaker's writers frame a request's rows.
pub fn write_features_record(values: &[f32], out: &mut Vec<u8>) {
    write_map_record(FEATURES, &[("values", values)], out);
}

/// Appends one RecordIO-framed `Record` whose map `field` holds `entries` (name, float32
/// values as a dense tensor).
fn write_map_record(field: u32, entries: &[(&str, &[f32])], out: &mut Vec<u8>) {
    let mut record = Vec::new();
    for (name, values) in entries {
        let mut packed = Vec::with_capacity(4 * values.len());
        for v in *values {
            packed.extend_from_slice(&v.to_le_bytes());
        }
        let mut tensor = Vec::new();
        length_delimited(1, &packed, &mut tensor);
        let mut value = Vec::new();
        length_delimited(2, &tensor, &mut value);
        let mut entry = Vec::new();
        length_delimited(1, name.as_bytes(), &mut entry);
        length_delimited(2, &value, &mut entry);
        length_delimited(field, &entry, &mut record);
    }
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(&record);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn length_delimited(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// The `label` map of a `Record` (for tests and clients): name and values.
pub fn labels(record: &[u8]) -> Result<Vec<(String, Vec<f32>)>, String> {
    map_entries(record, LABEL)?
        .into_iter()
        .map(|(name, value)| {
            let values = tensor(value)?
                .values
                .into_iter()
                .map(|v| v as f32)
                .collect();
            Ok((String::from_utf8_lossy(name).into_owned(), values))
        })
        .collect()
}

/// Reads the features of one `Record` into `row` (`n` wide): a dense tensor must hold `n`
/// values (NaN is a missing value); a sparse one (`keys`) sets those columns and leaves the rest
/// as they are (missing).
pub fn features(record: &[u8], row: &mut [f32]) -> Result<(), String> {
    let mut found = false;
    for (name, value) in map_entries(record, FEATURES)? {
        if name == b"values" {
            fill_row(tensor(value)?, row)?;
            found = true;
        }
    }
    if found {
        Ok(())
    } else {
        Err("the record has no feature tensor named 'values'".into())
    }
}

/// The `Record` fields holding maps of name to `Value`.
const FEATURES: u32 = 1;
const LABEL: u32 = 2;

/// A map entry: its name and `Value` bytes.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// The entries of the map in field `field` of a `Record`.
fn map_entries(record: &[u8], field: u32) -> Result<Vec<Entry<'_>>, String> {
    let mut entries = Vec::new();
    let mut r = Reader::new(record);
    while let Some((f, wire)) = r.key()? {
        if f != field || wire != 2 {
            r.skip(wire)?;
            continue;
        }
        let mut entry = Reader::new(r.bytes()?);
        let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
        while let Some((f, w)) = entry.key()? {
            match (f, w) {
                (1, 2) => name = entry.bytes()?,
                (2, 2) => value = entry.bytes()?,
                _ => entry.skip(w)?,
            }
        }
        entries.push((name, value));
    }
    Ok(entries)
}

/// A tensor's values, keys (sparse when any) and shape (empty when none).
struct Tensor {
    values: Vec<f64>,
    keys: Vec<u64>,
    shape: Vec<u64>,
}

/// The float32 (2), float64 (3) or int32 (7) tensor a `Value` holds.
fn tensor(value: &[u8]) -> Result<Tensor, String> {
    let mut v = Reader::new(value);
    while let Some((kind, w)) = v.key()? {
        if w != 2 || !matches!(kind, 2 | 3 | 7) {
            v.skip(w)?;
            continue;
        }
        let mut t = Tensor {
            values: Vec::new(),
            keys: Vec::new(),
            shape: Vec::new(),
        };
        let mut r = Reader::new(v.bytes()?);
        while let Some((f, w)) = r.key()? {
            match (f, w) {
                (1, 2) => {
                    let mut p = Reader::new(r.bytes()?);
                    while !p.done() {
                        t.values.push(p.number(kind)?);
                    }
                }
                (1, _) => t.values.push(r.number(kind)?),
                (2, 2) => {
                    let mut p = Reader::new(r.bytes()?);
                    while !p.done() {
                        t.keys.push(p.varint()?);
                    }
                }
                (2, 0) => t.keys.push(r.varint()?),
                (3, 2) => {
                    let mut p = Reader::new(r.bytes()?);
                    while !p.done() {
                        t.shape.push(p.varint()?);
                    }
                }
                (3, 0) => t.shape.push(r.varint()?),
                _ => r.skip(w)?,
            }
        }
        return Ok(t);
    }
    Err("the 'values' feature holds no float32, float64 or int32 tensor".into())
}

/// A feature value: NaN is a missing value (as XGBoost reads these tensors); infinities and
/// values beyond float32 are refused.
fn checked(v: f64) -> Result<f32, String> {
    if v.is_nan() {
        return Ok(f32::NAN);
    }
    crate::data::number::checked(v)
        .map(|v| v as f32)
        .map_err(|e| format!("a value {e}"))
}

/// One training example of a `Record`.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The label: the first value of the `label` map's `values` entry (or of its only entry).
    pub label: f32,
    /// The features (`values`): dense values, or sparse `(column, value)` entries.
    pub features: Vec<(usize, f32)>,
    /// The width a dense tensor (its length) or a sparse tensor's shape declares.
    pub width: Option<usize>,
    /// Whether the tensor was dense (every column given; NaN missing).
    pub dense: bool,
}

/// Reads one training example (features and label) from a `Record`.
pub fn example(record: &[u8]) -> Result<Example, String> {
    let labels = map_entries(record, LABEL)?;
    let label_value = labels
        .iter()
        .find(|(name, _)| *name == b"values")
        .or(if labels.len() == 1 {
            labels.first()
        } else {
            None
        })
        .ok_or("the record has no label (a 'values' entry in its label map)")?;
    let label = *tensor(label_value.1)?
        .values
        .first()
        .ok_or("the record's label tensor is empty")?;
    let label = crate::data::number::checked(label).map_err(|e| format!("the label {e}"))? as f32;
    let value = map_entries(record, FEATURES)?
        .into_iter()
        .find(|(name, _)| *name == b"values")
        .ok_or("the record has no feature tensor named 'values'")?
        .1;
    match FeatureTensor::of(tensor(value)?)? {
        FeatureTensor::Dense(values) => {
            let features = values
                .into_iter()
                .enumerate()
                .map(|(i, v)| checked(v).map(|v| (i, v)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Example {
                label,
                width: Some(features.len()),
                features,
                dense: true,
            })
        }
        FeatureTensor::Sparse { entries, width } => {
            let features = entries
                .into_iter()
                .map(|(k, v)| {
                    let i =
                        usize::try_from(k).map_err(|_| format!("sparse key {k} is too large"))?;
                    if width.is_some_and(|w| i >= w) {
                        return Err(format!("sparse key {k} is beyond the tensor's shape"));
                    }
                    Ok((i, checked(v)?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Example {
                label,
                features,
                width,
                dense: false,
            })
        }
    }
}

/// A feature tensor, told dense or sparse (values not yet checked).
enum FeatureTensor {
    /// Every column's value, in order.
    Dense(Vec<f64>),
    /// `(key, value)` entries, and the width the tensor's shape declares. A sparse tensor with
    /// no entries (the SDK writes an all-zero sparse row so) is a row of missing values, as the
    /// sparse matrix it came from has no entry there.
    Sparse {
        entries: Vec<(u64, f64)>,
        width: Option<usize>,
    },
}

impl FeatureTensor {
    /// Dense when it has values and no keys (or neither and no shape); else sparse, with as many
    /// keys as values.
    fn of(t: Tensor) -> Result<Self, String> {
        let empty_sparse = t.values.is_empty() && !t.shape.is_empty();
        if t.keys.is_empty() && !empty_sparse {
            return Ok(Self::Dense(t.values));
        }
        if t.keys.len() != t.values.len() {
            return Err(format!(
                "a sparse tensor has {} keys for {} values",
                t.keys.len(),
                t.values.len()
            ));
        }
        Ok(Self::Sparse {
            entries: t.keys.into_iter().zip(t.values).collect(),
            width: t.shape.last().map(|&w| w as usize),
        })
    }
}

/// Writes a dense or sparse feature tensor into `row`.
fn fill_row(t: Tensor, row: &mut [f32]) -> Result<(), String> {
    let n = row.len();
    match FeatureTensor::of(t)? {
        FeatureTensor::Dense(values) => {
            if values.len() != n {
                return Err(format!("expected {n} values, found {}", values.len()));
            }
            for (x, v) in row.iter_mut().zip(values) {
                *x = checked(v)?;
            }
        }
        FeatureTensor::Sparse { entries, .. } => {
            for (k, v) in entries {
                let i = usize::try_from(k).ok().filter(|&i| i < n).ok_or_else(|| {
                    format!("sparse key {k} is beyond the model's {n} features (keys are 0-based)")
                })?;
                row[i] = checked(v)?;
            }
        }
    }
    Ok(())
}

/// A protobuf wire-format reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or("protobuf: truncated number")?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("protobuf: a number longer than 10 bytes".into())
    }

    /// The next field number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, String> {
        if self.done() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some(((k >> 3) as u32, (k & 7) as u8)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.buf.len());
        let end = end.ok_or("protobuf: a field runs past its message")?;
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "protobuf: huge length")?;
        self.take(len)
    }

    /// One value of a float32 (field kind 2), float64 (3) or int32 (7) tensor.
    fn number(&mut self, kind: u32) -> Result<f64, String> {
        Ok(match kind {
            2 => f64::from(f32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            3 => f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")),
            _ => f64::from(self.varint()? as i32),
        })
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            w => Err(format!("protobuf: unsupported wire type {w}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A framed training record: `label`, and `values` at `keys` as a sparse tensor.
    pub(crate) fn sparse_example(label: f32, values: &[f32], keys: &[u64]) -> Vec<u8> {
        let mut labelled = Vec::new();
        write_label_record(&[("values", &[label])], &mut labelled);
        let label_part = &split(&labelled).unwrap()[0];
        // Protobuf fields of one message may come in any order: features, then the label map.
        let mut whole = record(values, keys);
        whole.extend_from_slice(label_part);
        framed(&[whole])
    }

    /// A record as SageMaker's writers make it: `values` as a float32 tensor.
    fn record(values: &[f32], keys: &[u64]) -> Vec<u8> {
        let mut packed = Vec::new();
        for v in values {
            packed.extend_from_slice(&v.to_le_bytes());
        }
        let mut tensor = Vec::new();
        length_delimited(1, &packed, &mut tensor);
        if !keys.is_empty() {
            let mut k = Vec::new();
            for &key in keys {
                varint(key, &mut k);
            }
            length_delimited(2, &k, &mut tensor);
        }
        let mut value = Vec::new();
        length_delimited(2, &tensor, &mut value);
        let mut entry = Vec::new();
        length_delimited(1, b"values", &mut entry);
        length_delimited(2, &value, &mut entry);
        let mut rec = Vec::new();
        length_delimited(1, &entry, &mut rec);
        rec
    }

    fn framed(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
            out.resize(out.len().div_ceil(4) * 4, 0);
        }
        out
    }

    #[test]
    fn dense_and_sparse_records_read_back() {
        let body = framed(&[record(&[1.0, 2.5, -3.0], &[]), record(&[7.0], &[2])]);
        let records = split(&body).unwrap();
        assert_eq!(records.len(), 2);
        let mut row = [f32::NAN; 3];
        features(&records[0], &mut row).unwrap();
        assert_eq!(row, [1.0, 2.5, -3.0]);
        let mut row = [f32::NAN; 3];
        features(&records[1], &mut row).unwrap();
        assert!(row[0].is_nan() && row[1].is_nan() && row[2] == 7.0);
        // An all-zero sparse row: no keys, no values, a shape: every value missing.
        let mut tensor = Vec::new();
        length_delimited(3, &[3], &mut tensor);
        let mut value = Vec::new();
        length_delimited(2, &tensor, &mut value);
        let mut entry = Vec::new();
        length_delimited(1, b"values", &mut entry);
        length_delimited(2, &value, &mut entry);
        let mut empty = Vec::new();
        length_delimited(1, &entry, &mut empty);
        let mut row = [f32::NAN; 3];
        features(&empty, &mut row).unwrap();
        assert!(row.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn label_records_read_back() {
        let mut body = Vec::new();
        write_label_record(
            &[
                ("predicted_label", &[1.0]),
                ("probabilities", &[0.25, 0.75]),
            ],
            &mut body,
        );
        write_label_record(&[("predicted_label", &[0.0])], &mut body);
        let records = split(&body).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            labels(&records[0]).unwrap(),
            vec![
                ("predicted_label".to_owned(), vec![1.0]),
                ("probabilities".to_owned(), vec![0.25, 0.75])
            ]
        );
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        assert!(split(b"abcdabcd").unwrap_err().contains("magic number"));
        let mut short = framed(&[record(&[1.0], &[])]);
        short.truncate(short.len() - 6);
        assert!(split(&short).unwrap_err().contains("runs past the body"));
        let mut row = [0.0; 2];
        let e = features(&record(&[1.0, 2.0, 3.0], &[]), &mut row).unwrap_err();
        assert_eq!(e, "expected 2 values, found 3");
        let e = features(&record(&[1.0], &[9]), &mut row).unwrap_err();
        assert!(
            e.contains("sparse key 9 is beyond the model's 2 features"),
            "{e}"
        );
        let e = features(&record(&[f32::INFINITY, 1.0], &[]), &mut row).unwrap_err();
        assert!(e.contains("not a finite number"), "{e}");
        assert!(features(b"\x0a\xff", &mut row).is_err());
    }
}
