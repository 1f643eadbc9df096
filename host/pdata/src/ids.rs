//! Trace and span id lengths of requests that arrive decoded (OTLP/JSON). The protobuf path
//! checks them in the validating scan; both refuse what upstream pdata refuses, so a bad id
//! cannot ride along in a merged batch and make a strict backend refuse the whole of it.

use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::metrics::v1::metric::Data;
use crate::{IdKind, JsonError};

fn check(id: &[u8], len: usize) -> Result<(), JsonError> {
    if id.is_empty() || id.len() == len {
        Ok(())
    } else {
        Err(JsonError::IdLength {
            id: if len == 16 {
                IdKind::Trace
            } else {
                IdKind::Span
            },
            len: id.len(),
        })
    }
}

/// Checks every trace and span id of a traces request.
pub(crate) fn traces(req: &ExportTraceServiceRequest) -> Result<(), JsonError> {
    for span in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        check(&span.trace_id, 16)?;
        check(&span.span_id, 8)?;
        check(&span.parent_span_id, 8)?;
        for link in &span.links {
            check(&link.trace_id, 16)?;
            check(&link.span_id, 8)?;
        }
    }
    Ok(())
}

/// Checks every trace and span id of a logs request.
pub(crate) fn logs(req: &ExportLogsServiceRequest) -> Result<(), JsonError> {
    for record in req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
    {
        check(&record.trace_id, 16)?;
        check(&record.span_id, 8)?;
    }
    Ok(())
}

/// Checks the exemplars' ids of a metrics request.
pub(crate) fn metrics(req: &ExportMetricsServiceRequest) -> Result<(), JsonError> {
    for metric in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let exemplars: Box<dyn Iterator<Item = _>> = match &metric.data {
            Some(Data::Gauge(g)) => Box::new(g.data_points.iter().flat_map(|p| &p.exemplars)),
            Some(Data::Sum(s)) => Box::new(s.data_points.iter().flat_map(|p| &p.exemplars)),
            Some(Data::Histogram(h)) => Box::new(h.data_points.iter().flat_map(|p| &p.exemplars)),
            Some(Data::ExponentialHistogram(h)) => {
                Box::new(h.data_points.iter().flat_map(|p| &p.exemplars))
            }
            Some(Data::Summary(_)) | None => Box::new(std::iter::empty()),
        };
        for e in exemplars {
            check(&e.trace_id, 16)?;
            check(&e.span_id, 8)?;
        }
    }
    Ok(())
}
