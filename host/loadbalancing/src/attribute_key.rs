//! The routing identifier of `routing_key: attributes` for spans, as upstream builds it:
//! `name=value|` for each configured name, in order. A name is looked up on the resource,
//! then on the scope, then as the pseudo attributes `span.kind` and `span.name`, then on
//! the first span of the trace; a name found nowhere contributes `name=|`.

use std::fmt::Write;

use base64::Engine;
use wasmcol_pdata::proto::common::v1::any_value::Value;
use wasmcol_pdata::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use wasmcol_pdata::proto::logs::v1::LogRecord;
use wasmcol_pdata::proto::resource::v1::Resource;
use wasmcol_pdata::proto::trace::v1::Span;

/// The routing identifier of the trace whose first span (in its resource and scope) is
/// `span`.
pub(crate) fn span_key(
    names: &[String],
    resource: Option<&Resource>,
    scope: Option<&InstrumentationScope>,
    span: &Span,
) -> String {
    let mut key = String::new();
    for name in names {
        key.push_str(name);
        key.push('=');
        let found = get(resource.map(|r| &r.attributes[..]), name)
            .or_else(|| get(scope.map(|s| &s.attributes[..]), name));
        match found {
            Some(value) => push_value(&mut key, value),
            None if name == "span.kind" => key.push_str(span_kind_name(span.kind)),
            None if name == "span.name" => key.push_str(&span.name),
            None => {
                if let Some(value) = get(Some(&span.attributes), name) {
                    push_value(&mut key, value);
                }
            }
        }
        key.push('|');
    }
    key
}

/// Appends `name=value|` for each of `names` found in `attributes`, in order, and returns the
/// names not found there: upstream's resource → scope → item descent for logs.
pub(crate) fn take_found<'n>(
    names: &[&'n str],
    attributes: &[KeyValue],
    key: &mut String,
) -> Vec<&'n str> {
    take_found_with(names, attributes, key, |key, name, value| {
        key.push_str(name);
        key.push('=');
        push_value(key, value);
        key.push('|');
    })
}

/// The metrics form of [`take_found`]. Upstream's metrics splitter appends only the value's
/// `Str()` (empty unless it is a string), with neither the name nor a separator, and this
/// does the same: a mixed fleet of wasmcol and otelcol load balancers must hash the same
/// bytes to route a data point to the same backend.
pub(crate) fn take_found_str<'n>(
    names: &[&'n str],
    attributes: &[KeyValue],
    key: &mut String,
) -> Vec<&'n str> {
    take_found_with(names, attributes, key, |key, _, value| {
        push_str_only(key, value)
    })
}

/// The descent step both forms share: `append` writes each found name's part of the key;
/// the names not found are returned for the next level.
fn take_found_with<'n>(
    names: &[&'n str],
    attributes: &[KeyValue],
    key: &mut String,
    append: impl Fn(&mut String, &str, Option<&Value>),
) -> Vec<&'n str> {
    let mut pending = Vec::new();
    for name in names {
        match get(Some(attributes), name) {
            Some(value) => append(key, name, value),
            None => pending.push(*name),
        }
    }
    pending
}

/// Appends, for each of `names` found in a data point's `attributes`, the value's `Str()`
/// (see [`take_found_str`]); a name the point lacks adds nothing, as upstream.
pub(crate) fn push_point_key(names: &[&str], attributes: &[KeyValue], key: &mut String) {
    for name in names {
        if let Some(value) = get(Some(attributes), name) {
            push_str_only(key, value);
        }
    }
}

/// Go pdata's `Value.Str()`: the string, or nothing for any other type.
fn push_str_only(key: &mut String, value: Option<&Value>) {
    if let Some(Value::StringValue(s)) = value {
        key.push_str(s);
    }
}

/// Appends `name=value|` for each of `names` still pending at a log record: the pseudo
/// attributes `log.severity` (the severity text) and `log.body` (the body as pdata's
/// `AsString`, see [`push_as_string`]), else the record's attribute, `name=|` when missing.
pub(crate) fn push_record_key(names: &[&str], record: &LogRecord, key: &mut String) {
    for name in names {
        key.push_str(name);
        key.push('=');
        match *name {
            "log.severity" => key.push_str(&record.severity_text),
            "log.body" => push_as_string(key, inner(record.body.as_ref())),
            _ => {
                if let Some(value) = get(Some(&record.attributes), name) {
                    push_value(key, value);
                }
            }
        }
        key.push('|');
    }
}

/// Appends a value as Go pdata's `Value.AsString` renders it, which upstream uses for
/// `log.body`: strings as they are, integers and booleans as Go formats them, doubles as
/// JSON numbers (ES6 form: `1e-7`, `1e+21`), bytes in standard base64, maps and arrays as
/// `encoding/json` marshals their raw form (keys sorted, `<>&` escaped as `\u003c`..., bytes
/// as base64 strings, an empty value as `null`). Where Go's marshalling fails (a NaN or an
/// infinity inside a map or array) the result is empty, as upstream's; a NaN or infinite
/// body is `json: unsupported value: NaN` (`+Inf`, `-Inf`), pdata's text.
pub(crate) fn push_as_string(out: &mut String, value: Option<&Value>) {
    match value {
        None | Some(Value::StringValueStrindex(_)) => {}
        Some(Value::StringValue(s)) => out.push_str(s),
        Some(Value::DoubleValue(d)) if !d.is_finite() => {
            out.push_str("json: unsupported value: ");
            out.push_str(&go_float(*d));
        }
        Some(Value::DoubleValue(d)) => push_es6_float(out, *d),
        Some(v @ (Value::KvlistValue(_) | Value::ArrayValue(_))) => {
            let mut json = String::new();
            if push_json(&mut json, Some(v)) {
                out.push_str(&json);
            }
        }
        other => push_value(out, other),
    }
}

/// A finite double as Go's `encoding/json` writes it (ES6 number to string): plain
/// digits for 1e-6 <= |f| < 1e21, else the shortest exponent form without padding.
fn push_es6_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is shortest round-trip, `1e-7` / `1.5e21`; Go writes `1.5e+21`.
        let sci = format!("{f:e}");
        match sci.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{m}e+{exp}");
            }
            _ => out.push_str(&sci),
        }
    } else {
        // Rust's Display of an f64 is the shortest round-trip digits, never an exponent.
        let _ = write!(out, "{f}");
    }
}

/// Appends a value as Go's `json.Marshal` of its pdata raw form; false when Go's marshal
/// would fail (a NaN or an infinity anywhere inside).
fn push_json(out: &mut String, value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => push_json_string(out, s),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) if !d.is_finite() => return false,
        Some(Value::DoubleValue(d)) => push_es6_float(out, *d),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::BytesValue(b)) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push('"');
        }
        Some(Value::KvlistValue(list)) => {
            // A Go map: the last of duplicate keys wins, and keys are written sorted.
            let map: std::collections::BTreeMap<&str, Option<&Value>> = list
                .values
                .iter()
                .map(|kv| (kv.key.as_str(), inner(kv.value.as_ref())))
                .collect();
            out.push('{');
            for (i, (k, v)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, k);
                out.push(':');
                if !push_json(out, v) {
                    return false;
                }
            }
            out.push('}');
        }
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !push_json(out, v.value.as_ref()) {
                    return false;
                }
            }
            out.push(']');
        }
    }
    true
}

/// A JSON string as Go's `encoding/json` writes it, HTML-safe (`<`, `>`, `&`, U+2028 and
/// U+2029 escaped).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The value of the first attribute named `name` (`None` inside: present without a value).
fn get<'a>(attributes: Option<&'a [KeyValue]>, name: &str) -> Option<Option<&'a Value>> {
    attributes?
        .iter()
        .find(|kv| kv.key == name)
        .map(|kv| kv.value.as_ref().and_then(|v| v.value.as_ref()))
}

/// Upstream's names of span kinds (pdata's `SpanKind.String`); an unknown kind is empty.
fn span_kind_name(kind: i32) -> &'static str {
    match kind {
        0 => "Unspecified",
        1 => "Internal",
        2 => "Server",
        3 => "Client",
        4 => "Producer",
        5 => "Consumer",
        _ => "",
    }
}

/// Appends a value as upstream renders it in a routing key: strings as they are, numbers
/// and booleans as Go formats them, bytes in standard base64, maps as `{k:v,...}` sorted by
/// key, arrays as `[v,...]`, an empty value as nothing.
fn push_value(out: &mut String, value: Option<&Value>) {
    match value {
        // A string-table index only means something inside a profiles dictionary.
        None | Some(Value::StringValueStrindex(_)) => {}
        Some(Value::StringValue(s)) => out.push_str(s),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => out.push_str(&go_float(*d)),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::BytesValue(b)) => {
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
        }
        Some(Value::KvlistValue(list)) => {
            let mut entries: Vec<&KeyValue> = list.values.iter().collect();
            // A map holds each key once; the sort is stable, so the first of duplicates leads.
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            entries.dedup_by(|b, a| a.key == b.key);
            out.push('{');
            for (i, kv) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&kv.key);
                out.push(':');
                push_value(out, inner(kv.value.as_ref()));
            }
            out.push('}');
        }
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, v.value.as_ref());
            }
            out.push(']');
        }
    }
}

fn inner(value: Option<&AnyValue>) -> Option<&Value> {
    value.and_then(|v| v.value.as_ref())
}

/// `f` as Go's `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that round-trip,
/// in exponent form (`1e+06`, `1.5e-07`) when the exponent is below -4 or at least 6.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Rust's `{:e}` is the shortest round-trip form too: `[-]d[.ddd]e[-]x`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    if !(-4..6).contains(&exp) {
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{esign}{:02}", exp.unsigned_abs());
    }
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmcol_pdata::proto::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn rendered(value: Value) -> String {
        let mut s = String::new();
        push_value(&mut s, Some(&value));
        s
    }

    #[test]
    fn values_render_as_upstream() {
        assert_eq!(rendered(Value::StringValue("abc".into())), "abc");
        assert_eq!(rendered(Value::IntValue(42)), "42");
        assert_eq!(rendered(Value::DoubleValue(3.5)), "3.5");
        assert_eq!(rendered(Value::BoolValue(true)), "true");
        assert_eq!(rendered(Value::BytesValue(vec![0x01, 0xff])), "Af8=");
        let map = Value::KvlistValue(KeyValueList {
            values: vec![
                kv("b", Value::IntValue(2)),
                kv("a", Value::StringValue("x".into())),
            ],
        });
        assert_eq!(rendered(map), "{a:x,b:2}");
        let array = Value::ArrayValue(ArrayValue {
            values: [
                Value::IntValue(1),
                Value::StringValue("x".into()),
                Value::BoolValue(false),
            ]
            .into_iter()
            .map(|v| AnyValue { value: Some(v) })
            .collect(),
        });
        assert_eq!(rendered(array), "[1,x,false]");
        let mut empty = String::new();
        push_value(&mut empty, None);
        assert_eq!(empty, "");
    }

    #[test]
    fn doubles_format_as_go_shortest_g() {
        for (f, go) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(go_float(f), go, "{f}");
        }
    }

    #[test]
    fn lookup_order_resource_scope_pseudo_span() {
        let resource = Resource {
            attributes: vec![kv("tenant", Value::StringValue("r".into()))],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            attributes: vec![
                kv("tenant", Value::StringValue("s".into())),
                kv("span.name", Value::StringValue("from-scope".into())),
            ],
            ..Default::default()
        };
        let span = Span {
            name: "GET /".into(),
            kind: 2,
            attributes: vec![
                kv("tenant", Value::StringValue("x".into())),
                kv("span.kind", Value::StringValue("ignored".into())),
                kv("http.route", Value::StringValue("/a".into())),
            ],
            ..Default::default()
        };
        let names: Vec<String> = ["tenant", "span.name", "span.kind", "http.route", "missing"]
            .map(String::from)
            .into();
        assert_eq!(
            span_key(&names, Some(&resource), Some(&scope), &span),
            "tenant=r|span.name=from-scope|span.kind=Server|http.route=/a|missing=|"
        );
        assert_eq!(
            span_key(&names, None, None, &span),
            "tenant=x|span.name=GET /|span.kind=Server|http.route=/a|missing=|"
        );
    }
}
