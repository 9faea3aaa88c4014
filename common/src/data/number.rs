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

#[cfg(test)]
mod tests {
    use super::*;

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
