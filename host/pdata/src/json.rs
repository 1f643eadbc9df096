//! OTLP/JSON: lowerCamelCase or snake_case field names, hex trace and span ids, enums as
//! integers, 64-bit integers as strings.

use serde::Serialize;

use crate::transcode;

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
/// Field names may be lowerCamelCase or snake_case, as upstream accepts both. The JSON is
/// transcoded straight to protobuf (see `transcode`), so memory stays proportional to the
/// text whatever its shape.
pub fn from_json<M: crate::OtlpRequest>(json: &[u8]) -> Result<M, JsonError> {
    let bytes = to_protobuf(M::SIGNAL, json)?;
    M::decode(bytes.as_slice()).map_err(|e| JsonError::Decode(e.into()))
}

/// OTLP/JSON of `signal`'s export request as its protobuf encoding.
pub(crate) fn to_protobuf(signal: crate::Signal, json: &[u8]) -> Result<Vec<u8>, JsonError> {
    let schema = match signal {
        crate::Signal::Traces => &transcode::TRACES,
        crate::Signal::Metrics => &transcode::METRICS,
        crate::Signal::Logs => &transcode::LOGS,
    };
    let mut out = transcode::Out {
        // Protobuf is rarely larger than its JSON; starting at a quarter avoids most regrowth
        // without reserving more than a small body needs.
        buf: Vec::with_capacity(json.len() / 4),
        bad_id: None,
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = transcode::transcode(schema, &mut out, &mut de).and_then(|()| de.end());
    match (parsed, out.bad_id) {
        (Ok(()), _) => Ok(out.buf),
        (Err(_), Some((id, len))) => Err(JsonError::IdLength { id, len }),
        (Err(e), None) => Err(e.into()),
    }
}

/// Prints a request as OTLP/JSON.
pub fn to_json<M: Serialize>(message: &M) -> Result<String, JsonError> {
    Ok(serde_json::to_string(message)?)
}
