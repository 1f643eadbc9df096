//! Helpers for the plugin end-to-end tests.
#![allow(dead_code)]
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::OnceLock;

use crate::common::Backend;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A string attribute's value.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match &a.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.clone()),
            _ => None,
        })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `n` spans of service `checkout`, ids derived from `tag`.
pub fn spans_request(n: usize, tag: u8) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| {
                        let mut trace_id = vec![tag; 16];
                        trace_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                        Span {
                            trace_id,
                            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                            name: format!("span {i}"),
                            attributes: vec![kv("http.method", "GET")],
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// Points the plugin compile cache of every collector this test process spawns at a temp
/// dir, so tests never write to the user's cache. Returns the directory.
pub fn isolate_cache() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: runs once, inside the OnceLock initialiser. std serialises `set_var` with
        // its own environment reads (`Command::spawn` snapshots the environment under the
        // same lock), and nothing in this test process reads the environment through libc
        // directly.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("WASMCOL_CACHE_DIR", dir.path())
        };
        dir
    });
    dir.path()
}

/// A collector config: OTLP/gRPC in, the processor `wasm/plugin` (its YAML in `processor`,
/// indented under `processors:`), OTLP out to `backend`.
pub fn wasm_forwarder(backend: &Backend, processor: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
{processor}
exporters:
  otlp:
    endpoint: {}
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [wasm/plugin]
      exporters: [otlp]
"#,
        backend.endpoint()
    )
}
