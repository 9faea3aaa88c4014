//! UBJSON (the binary JSON XGBoost 2 and later save models in by default) read straight into
//! serde types: a 1,000-tree model is read in about a tenth of the time XGBoost's own load and
//! JSON dump take. The subset XGBoost writes: objects, arrays (also optimised, typed and
//! counted), integers, 32/64-bit floats, strings, booleans, null.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Reads `T` from JSON text or UBJSON, whichever `bytes` hold: both open with `{`, and JSON's
/// next byte is `"` or white space.
pub fn from_json_or_ubjson<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.get(1) == Some(&b'"') || bytes.get(1).is_some_and(u8::is_ascii_whitespace) {
        serde_json::from_slice(bytes).map_err(|e| format!("JSON: {e}"))
    } else {
        from_slice(bytes)
    }
}

/// Reads `T` from UBJSON `bytes`.
pub fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    let mut reader = Reader {
        b: bytes,
        at: 0,
        depth: 0,
    };
    let marker = reader.u8()?;
    T::deserialize(Marked {
        r: &mut reader,
        marker,
    })
    .map_err(|e| e.0)
}

/// A UBJSON reading error.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Error(msg.to_string())
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    depth: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| format!("UBJSON: truncated at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn int(&mut self, marker: u8) -> Result<i64, String> {
        let be = |b: &[u8]| b.iter().fold(0i64, |acc, &x| (acc << 8) | i64::from(x));
        Ok(match marker {
            b'i' => i64::from(self.u8()? as i8),
            b'U' => i64::from(self.u8()?),
            b'I' => i64::from(be(self.take(2)?) as i16),
            b'l' => i64::from(be(self.take(4)?) as i32),
            b'L' => be(self.take(8)?),
            m => {
                return Err(format!(
                    "UBJSON: expected an integer, found marker 0x{m:02x}"
                ))
            }
        })
    }

    /// A length: an integer no larger than the bytes left (every counted item takes a byte at
    /// least, see [`Reader::container`]).
    fn len(&mut self) -> Result<usize, String> {
        let m = self.u8()?;
        let n = self.int(m)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.b.len() - self.at)
            .ok_or_else(|| format!("UBJSON: bad length {n}"))
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    /// The optional `$type` and `#count` after `[` or `{`.
    fn container(&mut self) -> Result<(Option<u8>, Option<usize>), String> {
        let mut kind = None;
        if self.peek() == Some(b'$') {
            self.at += 1;
            let k = self.u8()?;
            // Items of these types take no bytes: a short file could stand for endless items.
            if matches!(k, b'Z' | b'T' | b'F' | b'N') {
                return Err(format!("UBJSON: a container typed 0x{k:02x}"));
            }
            kind = Some(k);
        }
        let mut count = None;
        if self.peek() == Some(b'#') {
            self.at += 1;
            count = Some(self.len()?);
        }
        if kind.is_some() && count.is_none() {
            return Err("UBJSON: a typed container without a count".into());
        }
        Ok((kind, count))
    }
}

/// A value whose marker has been read.
struct Marked<'r, 'a> {
    r: &'r mut Reader<'a>,
    marker: u8,
}

impl<'de> Deserializer<'de> for Marked<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = self.r;
        match self.marker {
            b'Z' => visitor.visit_unit(),
            b'T' => visitor.visit_bool(true),
            b'F' => visitor.visit_bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => visitor.visit_i64(r.int(self.marker)?),
            b'd' => visitor.visit_f32(f32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"))),
            b'D' => visitor.visit_f64(f64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"))),
            b'S' => visitor.visit_string(r.string()?),
            b'[' | b'{' => {
                if r.depth >= 64 {
                    return Err(Error("UBJSON: nested too deeply".into()));
                }
                let (kind, count) = r.container()?;
                r.depth += 1;
                let access = Items {
                    r: &mut *r,
                    kind,
                    count,
                    done: 0,
                    end: if self.marker == b'[' { b']' } else { b'}' },
                };
                let value = if self.marker == b'[' {
                    visitor.visit_seq(access)
                } else {
                    visitor.visit_map(access)
                };
                r.depth -= 1;
                value
            }
            m => Err(Error(format!("UBJSON: unsupported marker 0x{m:02x}"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.marker == b'Z' {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// The items of an array or the entries of an object.
struct Items<'r, 'a> {
    r: &'r mut Reader<'a>,
    kind: Option<u8>,
    count: Option<usize>,
    done: usize,
    end: u8,
}

impl Items<'_, '_> {
    /// Whether another item follows (consuming the closing marker of an uncounted container).
    fn more(&mut self) -> bool {
        match self.count {
            Some(n) => self.done < n,
            None if self.r.peek() == Some(self.end) => {
                self.r.at += 1;
                false
            }
            None => true,
        }
    }

    fn marker(&mut self) -> Result<u8, String> {
        match self.kind {
            Some(k) => Ok(k),
            None => self.r.u8(),
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if !self.more() {
            return Ok(None);
        }
        self.done += 1;
        let marker = self.marker()?;
        seed.deserialize(Marked {
            r: &mut *self.r,
            marker,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.count.map(|n| n - self.done)
    }
}

impl<'de> MapAccess<'de> for Items<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if !self.more() {
            return Ok(None);
        }
        self.done += 1;
        let key = self.r.string()?;
        seed.deserialize(de::value::StringDeserializer::<Error>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let marker = self.marker()?;
        seed.deserialize(Marked {
            r: &mut *self.r,
            marker,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn xgboost_shapes_read_back() {
        // {"a": [1.5f32, 2.5f32] (typed, counted), "b": "x", "c": [i8 1, uint8 200], "d": null}
        let mut doc = b"{i\x01a[$d#i\x02".to_vec();
        doc.extend_from_slice(&1.5f32.to_be_bytes());
        doc.extend_from_slice(&2.5f32.to_be_bytes());
        doc.extend_from_slice(b"i\x01bSi\x01xi\x01c[i\x01U\xc8]i\x01dZ}");
        let v: serde_json::Value = super::from_slice(&doc).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [1.5, 2.5], "b": "x", "c": [1, 200], "d": null})
        );
        assert!(super::from_slice::<serde_json::Value>(&doc[..doc.len() - 3]).is_err());
        assert!(super::from_slice::<serde_json::Value>(b"[$d").is_err());
        // Items that take no bytes cannot be counted into the millions by a short file.
        assert!(super::from_slice::<serde_json::Value>(b"[$Z#l\x7f\xff\xff\xff").is_err());
        assert!(super::from_slice::<serde_json::Value>(b"[#l\x7f\xff\xff\xffZ").is_err());
    }
}
