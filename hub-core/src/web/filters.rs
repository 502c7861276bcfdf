//! Tera filters.

use std::collections::HashMap;
use tera::Value;

/// Serializes a value to JSON that is safe inside HTML, including a `<script type="application/json">`
/// block or an attribute: `<`, `>`, `&`, `'` and the JavaScript line separators are written as
/// `\u` escapes, so no value can close the element or start markup. Registered as both
/// `json_safe` and `json_encode` (replacing tera's built-in, which escapes none of them).
pub fn json_safe(value: &Value, _args: &HashMap<String, Value>) -> tera::Result<Value> {
    let raw = serde_json::to_string(value).map_err(|e| tera::Error::msg(e.to_string()))?;
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\'' => out.push_str("\\u0027"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_cannot_escape_the_json() {
        let v = serde_json::json!({"t": "</script><script>alert('x')</script>&\u{2028}"});
        let Value::String(s) = json_safe(&v, &HashMap::new()).unwrap() else {
            panic!("not a string")
        };
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('\'') && !s.contains('&'));
        assert!(!s.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v, "still the same JSON");
    }

    #[test]
    fn templates_use_it_in_script_blocks() {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.register_filter("json_encode", json_safe);
        tera.add_raw_template(
            "t.html",
            r#"<script type="application/json" id="d">{{ v | json_encode | safe }}</script>"#,
        )
        .unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("v", "</script><b>");
        let html = tera.render("t.html", &ctx).unwrap();
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
    }
}
