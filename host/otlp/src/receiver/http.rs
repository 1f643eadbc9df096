//! OTLP/HTTP: status codes and bodies exactly as upstream's otlpreceiver (`receiver/otlpreceiver/otlphttp.go`),
//! except that a body that does not decode gets 400 with a clear message.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use prost::Message;
use wasmcol_core::http::{
    Handler, HttpServer, ReadDeadline, ServerLimits, TimeoutKeys, handshake, response,
};
use wasmcol_core::{Batch, ConsumeError};
use wasmcol_pdata::Signal;

use super::{HttpServerConfig, Ingest};
use crate::compression::{Encoding, decompress};
use crate::status::{RpcStatus, grpc_status, http_code_for_grpc};
use crate::tls::ServerTlsConfig;

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Proto,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Proto => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

struct Settings {
    paths: Vec<(String, Signal)>,
    limit: usize,
    encodings: Option<Vec<String>>,
    response_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Where large bodies are decompressed and decoded, off the async workers.
    tasks: wasmcol_core::Tasks,
}

/// An uncompressed body up to this size is decoded where it arrived; anything larger, and
/// every compressed body (a few KiB of zstd can inflate to the full limit), goes to the
/// blocking pool, since parsing 20 MiB of JSON takes long enough to stall every other
/// connection served by the same worker.
const DECODE_INLINE_MAX: usize = 256 << 10;

pub(crate) async fn start(
    cfg: &HttpServerConfig,
    tls: Option<ServerTlsConfig>,
    ingest: Arc<Ingest>,
    tasks: &wasmcol_core::Tasks,
) -> Result<HttpServer, String> {
    let listener = wasmcol_core::http::bind(&cfg.endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let limit = if cfg.max_request_body_size <= 0 {
        20 << 20
    } else {
        cfg.max_request_body_size as usize
    };
    let mut response_headers = Vec::new();
    for (k, v) in &cfg.response_headers {
        let name = http::HeaderName::try_from(k.as_str())
            .map_err(|e| format!("response_headers.{k}: {e}"))?;
        let value =
            HeaderValue::try_from(v.as_str()).map_err(|e| format!("response_headers.{k}: {e}"))?;
        response_headers.push((name, value));
    }
    let settings = Arc::new(Settings {
        paths: vec![
            (cfg.traces_url_path.clone(), Signal::Traces),
            (cfg.metrics_url_path.clone(), Signal::Metrics),
            (cfg.logs_url_path.clone(), Signal::Logs),
        ],
        limit,
        encodings: cfg.compression_algorithms.clone(),
        response_headers,
        tasks: tasks.clone(),
    });
    let handler: Handler = Arc::new(move |req| {
        let ingest = ingest.clone();
        let settings = settings.clone();
        Box::pin(async move {
            let mut res = handle(req, &ingest, &settings).await;
            for (k, v) in &settings.response_headers {
                res.headers_mut().insert(k.clone(), v.clone());
            }
            res
        })
    });
    let limits = ServerLimits::from_keys(TimeoutKeys {
        read_timeout: cfg.read_timeout.map(Into::into),
        read_header_timeout: cfg.read_header_timeout.map(Into::into),
        write_timeout: cfg.write_timeout.map(Into::into),
        idle_timeout: cfg.idle_timeout.map(Into::into),
        keep_alives_enabled: cfg.keep_alives_enabled,
    });
    match tls {
        Some(tls) => {
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            let tls_handshake = handshake(move |tcp, peer| {
                let tls = tls.clone();
                async move { tls.accept(tcp, peer, local).await }
            });
            HttpServer::start_over(listener, handler, limits, tls_handshake, tasks)
        }
        None => HttpServer::start_with(listener, handler, limits, tasks),
    }
    .map_err(|e| e.to_string())
}

fn status_body(format: Format, code: tonic::Code, message: &str) -> Bytes {
    let st = RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: Vec::new(),
    };
    match format {
        Format::Proto => Bytes::from(st.encode_to_vec()),
        Format::Json => {
            Bytes::from(serde_json::json!({"code": code as i32, "message": message}).to_string())
        }
    }
}

fn error_response(format: Format, code: tonic::Code, message: &str) -> http::Response<Full<Bytes>> {
    response(
        http_code_for_grpc(code),
        format.content_type(),
        status_body(format, code, message),
    )
}

async fn handle(
    req: http::Request<Incoming>,
    ingest: &Ingest,
    s: &Settings,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path();
    let Some(signal) = s
        .paths
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, sig)| *sig)
        .filter(|sig| ingest.serves(*sig))
    else {
        return response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        );
    };
    if req.method() != http::Method::POST {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "405 method not allowed, supported: [POST]",
        );
    }
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let format = match media.as_str() {
        "application/x-protobuf" => Format::Proto,
        "application/json" => Format::Json,
        _ => {
            return response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain",
                "415 unsupported media type, supported: [application/json, application/x-protobuf]",
            );
        }
    };
    let enc_header = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let allowed = s.encodings.as_ref().is_none_or(|list| {
        enc_header.is_empty() || list.iter().any(|a| a.eq_ignore_ascii_case(&enc_header))
    });
    let Some(encoding) = Encoding::parse(&enc_header).filter(|_| allowed) else {
        return error_response(
            format,
            tonic::Code::InvalidArgument,
            &format!("unsupported Content-Encoding: {enc_header}"),
        );
    };
    // The body is read (within the limits) before the check so that a refused request's
    // items can be counted as refused, as the receiver metrics promise.
    let headers = ingest.reads_headers("http").then(|| req.headers().clone());
    let deadline = req.extensions().get::<ReadDeadline>().map(|d| d.0);
    let collect = Limited::new(req.into_body(), s.limit).collect();
    let collected = match deadline {
        Some(at) => match tokio::time::timeout_at(at, collect).await {
            Ok(r) => r,
            Err(_) => return body_timeout(format),
        },
        None => collect.await,
    };
    let body = match collected {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let msg = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                format!("request body too large: the limit is {} bytes", s.limit)
            } else {
                format!("failed to read request body: {e}")
            };
            return error_response(format, tonic::Code::InvalidArgument, &msg);
        }
    };
    let mut batch = match decode(s, signal, format, encoding, body).await {
        Ok(b) => b,
        Err(msg) => return error_response(format, tonic::Code::InvalidArgument, &msg),
    };
    if let Some(h) = &headers {
        batch = match ingest.admit("http", h, batch) {
            Ok(b) => b,
            Err(e) => return response(StatusCode::UNAUTHORIZED, "text/plain; charset=utf-8", e),
        };
    }
    match ingest.push("http", batch).await {
        Ok(()) => {
            let body = match format {
                Format::Proto => Bytes::new(),
                Format::Json => Bytes::from_static(b"{}"),
            };
            response(StatusCode::OK, format.content_type(), body)
        }
        Err(e) => consume_error_response(format, &e),
    }
}

/// Decompresses and decodes a body; a large or compressed one on the blocking pool.
async fn decode(
    s: &Settings,
    signal: Signal,
    format: Format,
    encoding: Encoding,
    body: Bytes,
) -> Result<Batch, String> {
    let limit = s.limit;
    let inline = encoding == Encoding::Identity && body.len() <= DECODE_INLINE_MAX;
    let work = move || {
        let body = decompress(encoding, body, limit).map_err(|e| e.to_string())?;
        match format {
            Format::Proto => Batch::from_encoded(signal, body).map_err(|e| e.to_string()),
            Format::Json => Batch::from_json(signal, &body).map_err(|e| e.to_string()),
        }
    };
    if inline {
        return work();
    }
    s.tasks
        .spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("decoding the request failed: {e}")))
}

/// 408 for a body that did not arrive within `read_timeout`; the connection is closed, as
/// the rest of the body would otherwise be read as the next request.
fn body_timeout(format: Format) -> http::Response<Full<Bytes>> {
    let mut res = error_response(
        format,
        tonic::Code::InvalidArgument,
        "request body not received within read_timeout",
    );
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn consume_error_response(format: Format, e: &ConsumeError) -> http::Response<Full<Bytes>> {
    let st = grpc_status(e);
    let mut res = error_response(format, st.code(), st.message());
    // Retry-After only with 429/503 and a known delay, like upstream's writeStatusResponse.
    if let Some(d) = e.retry_delay()
        && matches!(res.status().as_u16(), 429 | 503)
    {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}
