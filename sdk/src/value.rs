//! Attribute values.

use std::fmt;

/// An attribute value (OTLP `AnyValue`).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// No value set.
    #[default]
    Empty,
    /// A UTF-8 string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An array or key-value list, as the protobuf encoding of the OTLP `AnyValue`. Opaque to
    /// the SDK: copy it, compare it, write it back.
    Nested(Vec<u8>),
}

impl Value {
    /// The string, when the value is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when the value is an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, when the value is a double.
    pub fn as_double(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The boolean, when the value is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Upstream's `pcommon.Value.AsString()` for scalars: strings as is, booleans `true` /
    /// `false`, integers in decimal, doubles in Go's shortest `%g`-like form, bytes in base64.
    /// Nested values and empty give `""` (the SDK does not decode them).
    pub fn to_string_lossy(&self) -> String {
        match self {
            Value::Empty | Value::Nested(_) => String::new(),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format_double(*d),
            Value::Bytes(b) => base64(b),
        }
    }

    /// Converts a JSON value from a config into an attribute value the way upstream's
    /// `pcommon.Value.FromRaw` does for YAML scalars: strings, booleans, integers, floats.
    /// `null` gives `Empty`; arrays and objects are not supported and give `None`.
    pub fn from_json(v: &serde_json::Value) -> Option<Value> {
        Some(match v {
            serde_json::Value::Null => Value::Empty,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64()?),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => return None,
        })
    }
}

/// A config field may be a `Value`: a JSON string, boolean, number or `null`, as
/// [`Value::from_json`] converts it; an array or object is a config error.
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        Value::from_json(&json).ok_or_else(|| {
            serde::de::Error::custom("expected a string, boolean, number or null attribute value")
        })
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` is what upstream prints; Rust's shortest
/// round-trip form agrees for the common cases (integral values print without `.0`).
fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if d.is_nan() {
        return "NaN".into();
    }
    let s = format!("{d}");
    if let Some(stripped) = s.strip_suffix(".0") {
        stripped.to_owned()
    } else {
        s
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_match_upstream() {
        assert_eq!(Value::Int(-3).to_string_lossy(), "-3");
        assert_eq!(Value::Double(2.0).to_string_lossy(), "2");
        assert_eq!(Value::Double(2.5).to_string_lossy(), "2.5");
        assert_eq!(Value::Bool(true).to_string_lossy(), "true");
        assert_eq!(
            Value::Bytes(b"hello".to_vec()).to_string_lossy(),
            "aGVsbG8="
        );
        assert_eq!(Value::Bytes(b"hi".to_vec()).to_string_lossy(), "aGk=");
        assert_eq!(Value::Empty.to_string_lossy(), "");
    }

    #[test]
    fn json_scalars_convert() {
        assert_eq!(Value::from_json(&serde_json::json!(3)), Some(Value::Int(3)));
        assert_eq!(
            Value::from_json(&serde_json::json!(1.5)),
            Some(Value::Double(1.5))
        );
        assert_eq!(
            Value::from_json(&serde_json::json!("x")),
            Some(Value::from("x"))
        );
        assert_eq!(Value::from_json(&serde_json::json!([1])), None);
    }
}
