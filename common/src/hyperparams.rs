//! `hyperparameters.json`: decoding the values clients send, and reading them as typed settings.
//!
//! SageMaker passes every hyperparameter as a string, but clients encode them three ways: the SDK
//! v2 generic `Estimator` uses Python `str()` (`True`, `0.1`), framework estimators JSON-encode
//! every value (`"\"0.1\""`), and SDK v3 leaves strings raw but JSON-encodes the rest (`true`,
//! `[1, 2]`). [`Hyperparameters::from_json`] turns all three into one plain string per key;
//! [`HyperparameterReader`] then reads typed values with defaults and ranges, and
//! [`HyperparameterReader::finish`] rejects keys nobody read. Reserved keys
//! (`_tuning_objective_metric`, `sagemaker_*`) are accepted and kept apart.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Decoded hyperparameters: plain string values, reserved keys removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hyperparameters {
    values: BTreeMap<String, String>,
    /// `_tuning_objective_metric`, sent by hyperparameter tuning jobs.
    pub tuning_objective_metric: Option<String>,
}

impl Hyperparameters {
    /// Reads `hyperparameters.json`; a missing file means no hyperparameters.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_json(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Decodes a `hyperparameters.json` body (a flat JSON object).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let object: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| {
                Error::Config(format!(
                    "hyperparameters.json is not a flat JSON object: {e}"
                ))
            })?;
        let mut out = Self::default();
        for (key, value) in object {
            let value = decode_value(&value);
            if key == "_tuning_objective_metric" {
                out.tuning_objective_metric = Some(value);
            } else if !key.starts_with("sagemaker_") {
                out.values.insert(key, value);
            }
        }
        Ok(out)
    }

    /// Builds hyperparameters from plain key/value pairs (tests and local tools).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let values = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            values,
            tuning_objective_metric: None,
        }
    }

    /// The decoded value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// All decoded pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One value as a plain string, whichever of the three client encodings it arrived in.
fn decode_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        // A string that is itself a JSON string literal (framework estimators) is unwrapped once;
        // any other string is kept as it is.
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::String(inner)) => inner,
            Ok(inner @ Value::Array(_)) => decode_value(&inner),
            _ => s.trim().to_owned(),
        },
        Value::Array(items) => items.iter().map(decode_value).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An allowed interval for a number, used in messages as `[a, b]`, `(a, b]` and so on.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    /// Lower bound.
    pub min: f64,
    /// Whether the lower bound itself is allowed.
    pub min_inclusive: bool,
    /// Upper bound.
    pub max: f64,
    /// Whether the upper bound itself is allowed.
    pub max_inclusive: bool,
}

impl Interval {
    /// `[min, max]`.
    pub const fn closed(min: f64, max: f64) -> Self {
        Self {
            min,
            min_inclusive: true,
            max,
            max_inclusive: true,
        }
    }
    /// `(min, max]`.
    pub const fn left_open(min: f64, max: f64) -> Self {
        Self {
            min,
            min_inclusive: false,
            max,
            max_inclusive: true,
        }
    }
    /// `[min, max)`.
    pub const fn right_open(min: f64, max: f64) -> Self {
        Self {
            min,
            min_inclusive: true,
            max,
            max_inclusive: false,
        }
    }

    fn contains(&self, v: f64) -> bool {
        let above = if self.min_inclusive {
            v >= self.min
        } else {
            v > self.min
        };
        let below = if self.max_inclusive {
            v <= self.max
        } else {
            v < self.max
        };
        above && below
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = if self.min_inclusive { '[' } else { '(' };
        let close = if self.max_inclusive && self.max.is_finite() {
            ']'
        } else {
            ')'
        };
        let max = if self.max.is_infinite() {
            "inf".to_owned()
        } else {
            self.max.to_string()
        };
        write!(f, "{open}{}, {max}{close}", self.min)
    }
}

/// Reads typed hyperparameters, remembering which keys were read so unknown ones can be rejected.
pub struct HyperparameterReader<'a> {
    hp: &'a Hyperparameters,
    read: BTreeSet<&'static str>,
}

impl<'a> HyperparameterReader<'a> {
    /// Starts reading `hp`.
    pub fn new(hp: &'a Hyperparameters) -> Self {
        Self {
            hp,
            read: BTreeSet::new(),
        }
    }

    fn raw(&mut self, key: &'static str) -> Option<&'a str> {
        self.read.insert(key);
        self.hp.get(key).filter(|v| !v.is_empty())
    }

    /// A finite number within `range`.
    pub fn f64(&mut self, key: &'static str, default: f64, range: Interval) -> Result<f64> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        let value: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| bad(key, text, &format!("a number in {range}")))?;
        if !range.contains(value) {
            return Err(Error::Hyperparameter(format!(
                "{key}: {text} is not in {range}"
            )));
        }
        Ok(value)
    }

    /// An optional number within `range` (no default).
    pub fn opt_f64(&mut self, key: &'static str, range: Interval) -> Result<Option<f64>> {
        if self.hp.get(key).is_none_or(str::is_empty) {
            self.read.insert(key);
            return Ok(None);
        }
        self.f64(key, f64::NAN, range).map(Some)
    }

    /// A whole number within `[min, max]`; `1e3` and `100.0` are accepted as whole numbers.
    pub fn u64(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> Result<u64> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        let allowed = format!("a whole number in [{min}, {max}]");
        let value: f64 = text.parse().map_err(|_| bad(key, text, &allowed))?;
        if !value.is_finite() || value.fract() != 0.0 {
            return Err(bad(key, text, &allowed));
        }
        if value < min as f64 || value > max as f64 {
            return Err(Error::Hyperparameter(format!(
                "{key}: {text} is not in [{min}, {max}]"
            )));
        }
        Ok(value as u64)
    }

    /// Free text (`None` when absent or empty).
    pub fn raw_text(&mut self, key: &'static str) -> Option<&'a str> {
        self.raw(key)
    }

    /// `true`/`false` in any case (also `1`/`0`).
    pub fn bool(&mut self, key: &'static str, default: bool) -> Result<bool> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(bad(key, text, "true or false")),
        }
    }

    /// One of `choices` (case-insensitive); returns the canonical spelling.
    pub fn choice(
        &mut self,
        key: &'static str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str> {
        let Some(text) = self.raw(key) else {
            return Ok(default);
        };
        choices
            .iter()
            .copied()
            .find(|c| c.eq_ignore_ascii_case(text))
            .ok_or_else(|| bad(key, text, &format!("one of {}", choices.join(", "))))
    }

    /// A list of `choices` given as JSON or comma-separated; no repeats, at least one element.
    pub fn list(
        &mut self,
        key: &'static str,
        default: &[&'static str],
        choices: &[&'static str],
    ) -> Result<Vec<&'static str>> {
        let allowed = format!("a comma-separated list of {}", choices.join(", "));
        let given_empty = self.hp.get(key).is_some();
        let Some(text) = self.raw(key) else {
            // An empty list given on purpose (`[]`, `""`) is a mistake, not "the default".
            if given_empty {
                return Err(bad(key, "[]", &allowed));
            }
            return Ok(default.to_vec());
        };
        let mut out = Vec::new();
        for item in text
            .split(',')
            .map(|s| s.trim().trim_matches(['"', '\'', '[', ']']).trim())
        {
            if item.is_empty() {
                continue;
            }
            let c = choices
                .iter()
                .copied()
                .find(|c| c.eq_ignore_ascii_case(item))
                .ok_or_else(|| bad(key, text, &allowed))?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err(bad(key, text, &allowed));
        }
        Ok(out)
    }

    /// Fails on the first key that no reader asked for.
    pub fn finish(self) -> Result<()> {
        match self.hp.iter().find(|(k, _)| !self.read.contains(k)) {
            None => Ok(()),
            Some((k, _)) => Err(Error::Hyperparameter(format!(
                "Extraneous hyperparameter found: {}; known hyperparameters: {}",
                crate::error::one_line(k, 100),
                self.read.iter().copied().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

fn bad(key: &str, text: &str, allowed: &str) -> Error {
    // A value is quoted as one short line: it may be anything a client sent.
    let text = crate::error::one_line(text, 100);
    Error::Hyperparameter(format!(
        "{key}: could not parse value '{text}'; allowed: {allowed}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Hyperparameters {
        Hyperparameters::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn three_client_encodings_decode_alike() {
        let plain = decode(r#"{"eta":"0.1","flag":"True","models":"['a', 'b']","name":"x"}"#);
        let framework =
            decode(r#"{"eta":"0.1","flag":"true","models":"[\"a\", \"b\"]","name":"\"x\""}"#);
        let v3 = decode(r#"{"eta":0.1,"flag":true,"models":["a","b"],"name":"x"}"#);
        assert_eq!(framework.get("name"), Some("x"));
        assert_eq!(v3.get("models"), Some("a,b"));
        assert_eq!(framework.get("models"), Some("a,b"));
        for hp in [&plain, &framework, &v3] {
            let mut r = HyperparameterReader::new(hp);
            assert_eq!(r.f64("eta", 0.0, Interval::closed(0.0, 1.0)).unwrap(), 0.1);
            assert!(r.bool("flag", false).unwrap());
            assert_eq!(
                r.list("models", &[], &["a", "b", "c"]).unwrap(),
                vec!["a", "b"]
            );
            assert_eq!(r.choice("name", "y", &["x", "y"]).unwrap(), "x");
            r.finish().unwrap();
        }
    }

    #[test]
    fn reserved_keys_are_accepted_and_kept_apart() {
        let hp = decode(
            r#"{"_tuning_objective_metric":"validation:auc","sagemaker_job_name":"\"j\"","sagemaker_region":"us-east-1"}"#,
        );
        assert_eq!(
            hp.tuning_objective_metric.as_deref(),
            Some("validation:auc")
        );
        HyperparameterReader::new(&hp).finish().unwrap();
    }

    #[test]
    fn scientific_notation_and_whole_numbers() {
        let hp = Hyperparameters::from_pairs([("a", "1e-5"), ("n", "1e3"), ("m", "200.0")]);
        let mut r = HyperparameterReader::new(&hp);
        assert_eq!(r.f64("a", 0.0, Interval::closed(0.0, 1.0)).unwrap(), 1e-5);
        assert_eq!(r.u64("n", 0, 1, 10_000).unwrap(), 1000);
        assert_eq!(r.u64("m", 0, 1, 10_000).unwrap(), 200);
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let hp = Hyperparameters::from_pairs([
            ("eta", "fast"),
            ("n", "2.5"),
            ("c", "0"),
            ("b", "maybe"),
        ]);
        let mut r = HyperparameterReader::new(&hp);
        let e = r
            .f64("eta", 0.1, Interval::left_open(0.0, 1.0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("eta") && e.contains("'fast'") && e.contains("(0, 1]"),
            "{e}"
        );
        let e = r.u64("n", 1, 1, 10).unwrap_err().to_string();
        assert!(e.contains("'2.5'") && e.contains("whole number"), "{e}");
        let e = r
            .f64("c", 1.0, Interval::left_open(0.0, f64::INFINITY))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c: 0 is not in (0, inf)"), "{e}");
        let e = r.bool("b", true).unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
        assert!(r.f64("nan", 1.0, Interval::closed(0.0, 2.0)).is_ok());
    }

    #[test]
    fn non_finite_numbers_are_rejected() {
        let hp = Hyperparameters::from_pairs([("x", "NaN"), ("y", "inf")]);
        let mut r = HyperparameterReader::new(&hp);
        assert!(r.f64("x", 0.0, Interval::closed(0.0, 1.0)).is_err());
        assert!(r
            .f64("y", 0.0, Interval::closed(0.0, f64::INFINITY))
            .is_err());
    }

    #[test]
    fn unknown_key_fails_with_its_name() {
        let hp = Hyperparameters::from_pairs([("num_trees", "5"), ("typo_key", "1")]);
        let mut r = HyperparameterReader::new(&hp);
        r.u64("num_trees", 1, 1, 10).unwrap();
        let e = r.finish().unwrap_err().to_string();
        assert!(
            e.contains("Extraneous hyperparameter found: typo_key"),
            "{e}"
        );
    }

    #[test]
    fn not_an_object_is_a_config_error() {
        assert!(Hyperparameters::from_json(b"[1,2]").is_err());
        assert!(Hyperparameters::from_json(b"{\"a\":").is_err());
    }
}
