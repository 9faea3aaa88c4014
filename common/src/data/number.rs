//! The one rule for numbers read from data and requests: a value must be finite in the 32-bit
//! floats the models compute in. `1e39` parses as a finite `f64` but is infinity as `f32`, so it
//! is refused like `inf` and `NaN`, with the place it was found named by the caller.

/// Largest magnitude a feature or label may have (`f32::MAX`, about 3.4e38).
pub const MAX_MAGNITUDE: f64 = f32::MAX as f64;

/// `value` if it is finite in 32-bit floats, else why not (a phrase to follow the value's name).
pub fn checked(value: f64) -> Result<f64, String> {
    if value.is_nan() || value.is_infinite() {
        Err(format!("is not a finite number: {value}"))
    } else if value.abs() > MAX_MAGNITUDE {
        Err(format!(
            "is outside the 32-bit float range the models compute in (|x| <= 3.4e38): {value:e}"
        ))
    } else {
        Ok(value)
    }
}

/// The one reading of a CSV field, in training data and requests alike: surrounding spaces
/// and double quotes are not part of the value (`  "1.0" ` and `" 1.0"` are `1.0`; `" "` is
/// empty).
pub fn unquote(field: &str) -> &str {
    field.trim().trim_matches('"').trim()
}

/// Parses a field ([`unquote`]d); the number must pass [`checked`]. The error quotes at most 40
/// characters of the field.
pub fn parse(field: &str) -> Result<f64, String> {
    let text = unquote(field);
    match text.parse::<f64>() {
        Ok(v) => checked(v),
        Err(_) => {
            let shown: String = text.chars().take(40).collect();
            Err(format!("is not a number: \"{shown}\""))
        }
    }
}

/// Appends `v` as `write!(out, "{v}")` does (the shortest digits that read back to `v`, never an
/// exponent), several times faster: zmij's shortest digits, less the `.0` it adds to whole
/// numbers; values it writes with an exponent (below 1e-5 or from 1e16 on in magnitude) and
/// non-finite ones are left to `Display`. Where two shortest forms are equally near (`v` exactly
/// halfway, as 1820830.25), zmij takes the even last digit and `Display` the upper one: both
/// read back to `v`. (Formatting was 8 % of a batch server's CPU.)
pub fn push_f32(out: &mut String, v: f32) {
    let mut buffer = zmij::Buffer::new();
    let text = buffer.format(v);
    if !v.is_finite() || text.contains('e') {
        use std::fmt::Write;
        let _ = write!(out, "{v}");
        return;
    }
    out.push_str(text.strip_suffix(".0").unwrap_or(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_written_as_display_writes_it() {
        use rand::{Rng, SeedableRng};
        let mut r = rand_pcg::Pcg64::seed_from_u64(5);
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            0.1,
            1e-5,
            9.99e-6,
            1e-6,
            1e15,
            1e16,
            1.5e16,
            123456.0,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::EPSILON,
            1e-45,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.8310306,
            16777216.0,
            16777217.0,
        ];
        let random: Vec<f32> = (0..1_000_000)
            .map(|_| f32::from_bits(r.random::<u32>()))
            .collect();
        let probabilities: Vec<f32> = (0..1_000_000).map(|_| r.random::<f32>()).collect();
        let (mut out, mut ties) = (String::new(), 0);
        for v in special.into_iter().chain(random).chain(probabilities) {
            out.clear();
            push_f32(&mut out, v);
            let display = format!("{v}");
            if out != display {
                // Only the last digit of a halfway value: the same length, the same value.
                assert_eq!(out.len(), display.len(), "bits {:#x}", v.to_bits());
                assert_eq!(out[..out.len() - 1], display[..out.len() - 1], "{v}");
                assert_eq!(out.parse::<f32>(), Ok(v), "bits {:#x}", v.to_bits());
                ties += 1;
            }
        }
        assert!(ties < 10_000, "{ties} values written otherwise");
    }

    #[test]
    fn finite_in_f32_or_refused() {
        assert_eq!(parse(" \"1.5\" "), Ok(1.5));
        assert_eq!(parse("\" 1.5\""), Ok(1.5));
        assert_eq!(unquote("\" \""), "");
        assert_eq!(parse("-3e38"), Ok(-3e38));
        for bad in ["1e39", "-1e39", "1e400", "inf", "NaN", "-infinity"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("1e39").unwrap_err().contains("32-bit"));
        assert_eq!(parse("abc").unwrap_err(), "is not a number: \"abc\"");
        assert!(checked(f64::MAX).is_err());
    }
}
