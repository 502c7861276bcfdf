//! Validated text: the rules every free-text field of the API shares.
//!
//! PostgreSQL `text` cannot hold NUL, and control characters in titles end up in terminals and
//! logs, so they are refused at the edge with a message naming the field.

/// Checks a single-line field: trimmed length within bounds, no control characters.
pub fn single_line(field: &str, value: &str, min: usize, max: usize) -> Result<String, String> {
    let v = value.trim();
    check_len(field, v, min, max)?;
    if v.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be a single line without control characters"
        ));
    }
    Ok(v.to_owned())
}

/// Checks a multi-line field: length within bounds, only newline and tab as control characters.
pub fn multi_line(field: &str, value: &str, min: usize, max: usize) -> Result<String, String> {
    let v = value.trim_end();
    check_len(field, v, min, max)?;
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(format!("{field} contains control characters"));
    }
    Ok(v.to_owned())
}

fn check_len(field: &str, v: &str, min: usize, max: usize) -> Result<(), String> {
    let n = v.chars().count();
    if n < min {
        return Err(if min == 1 {
            format!("{field} must not be empty")
        } else {
            format!("{field} must have at least {min} characters")
        });
    }
    if n > max {
        return Err(format!(
            "{field} must have at most {max} characters (has {n})"
        ));
    }
    Ok(())
}

/// Checks that a JSON value holds no string PostgreSQL cannot store (NUL) and is not too deep.
pub fn json_storable(field: &str, value: &serde_json::Value) -> Result<(), String> {
    fn walk(v: &serde_json::Value, depth: usize) -> Result<(), &'static str> {
        if depth > 32 {
            return Err("is nested more than 32 levels deep");
        }
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Err("contains a NUL character"),
            serde_json::Value::Array(a) => a.iter().try_for_each(|x| walk(x, depth + 1)),
            serde_json::Value::Object(o) => o.iter().try_for_each(|(k, x)| {
                if k.contains('\0') {
                    return Err("contains a NUL character");
                }
                walk(x, depth + 1)
            }),
            _ => Ok(()),
        }
    }
    walk(value, 0).map_err(|e| format!("{field} {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_rules() {
        assert_eq!(
            single_line("title", "  Ship it ", 1, 10).unwrap(),
            "Ship it"
        );
        assert!(single_line("title", "   ", 1, 10)
            .unwrap_err()
            .contains("empty"));
        assert!(single_line("title", "a\nb", 1, 10)
            .unwrap_err()
            .contains("single line"));
        assert!(single_line("title", "abcdefghijk", 1, 10)
            .unwrap_err()
            .contains("at most 10"));
    }

    #[test]
    fn json_nul_refused() {
        let v = serde_json::json!({"a": ["ok", "bad\u{0000}"]});
        assert!(json_storable("detail", &v).unwrap_err().contains("NUL"));
        assert!(json_storable("detail", &serde_json::json!({"a": 1})).is_ok());
    }
}
