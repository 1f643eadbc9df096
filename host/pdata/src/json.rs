//! OTLP/JSON: lowerCamelCase or snake_case field names, hex trace and span ids, enums as
//! integers, 64-bit integers as strings.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// OTLP/JSON that does not parse as the expected request, or a batch that cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The JSON is malformed or does not match the OTLP schema; `line` and `column` are
    /// 1-based, and 0 when the fault has no position (a value that failed after parsing).
    #[error("failed to decode OTLP/JSON: {message}{}", position(*line, *column))]
    Json {
        /// What serde_json reports, without its position suffix.
        message: String,
        /// What kind of fault it is: syntax, a premature end, or data of the wrong shape.
        category: JsonFault,
        /// Line of the fault.
        line: usize,
        /// Column of the fault.
        column: usize,
    },
    /// A hex trace or span id of the wrong length (upstream's OTLP/JSON text).
    #[error("failed to decode OTLP/JSON: invalid length for ID")]
    IdLength {
        /// Which id.
        id: crate::IdKind,
        /// The length found, in bytes.
        len: usize,
    },
    /// The batch's protobuf bytes did not decode.
    #[error(transparent)]
    Decode(#[from] crate::DecodeError),
}

/// The kind of a JSON fault, as serde_json classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFault {
    /// Not JSON: a bad token.
    Syntax,
    /// The input ends before the value does.
    Eof,
    /// Valid JSON that is not an OTLP request of the expected signal.
    Data,
    /// Reading or writing failed.
    Io,
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line} column {column}")
    }
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        // serde_json appends the position to its message; it is kept in its own fields.
        let message = match full.strip_suffix(&position(line, column)) {
            Some(m) => m.to_owned(),
            None => full.clone(),
        };
        let (line, column) = if message.len() == full.len() {
            (0, 0)
        } else {
            (line, column)
        };
        JsonError::Json {
            message,
            category: match e.classify() {
                Category::Syntax => JsonFault::Syntax,
                Category::Eof => JsonFault::Eof,
                Category::Data => JsonFault::Data,
                Category::Io => JsonFault::Io,
            },
            line,
            column,
        }
    }
}

/// Parses an OTLP/JSON export request.
///
/// Upstream accepts both `traceId` and `trace_id`; the generated serde code knows only the
/// camelCase form, so snake_case keys are rewritten first. This is safe because in OTLP/JSON
/// every object key is a field name (attribute keys are values of `key` fields).
pub fn from_json<M: DeserializeOwned>(json: &[u8]) -> Result<M, JsonError> {
    let mut value: serde_json::Value = serde_json::from_slice(json)?;
    camel_case_keys(&mut value);
    Ok(serde_json::from_value(value)?)
}

/// Prints a request as OTLP/JSON.
pub fn to_json<M: Serialize>(message: &M) -> Result<String, JsonError> {
    Ok(serde_json::to_string(message)?)
}

fn camel_case_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('_')) {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    camel_case_keys(&mut v);
                    map.insert(to_camel(&k), v);
                }
            } else {
                for v in map.values_mut() {
                    camel_case_keys(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(camel_case_keys),
        _ => {}
    }
}

fn to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
