//! The native per-trace buffer for plugins that decide whole traces (WIT 0.2.0
//! `hold-traces`, tail sampling).
//!
//! Spans wait here, not in the plugin: the buffer is bounded by `num_traces` (the oldest
//! trace is evicted when a new one arrives, and counted when it was still undecided), it
//! survives a plugin trap, and the plugin sees one trace at a time when its `decision_wait`
//! has elapsed. Decided traces stay as an entry without spans until evicted, so their late
//! spans follow the decision; after that the decision caches (LRU of trace IDs) answer, and
//! a trace found in neither starts a new decision cycle (upstream's rules).
//!
//! Each trace's spans are kept encoded, one `ExportTraceServiceRequest` fragment per trace
//! and request: concatenated, the fragments are the encoding of one request holding them
//! all, so a decided trace is lent to the plugin and forwarded without re-encoding. Decoded
//! prost messages took 6.5 times the memory (`plugins/tail_sampling/README.md`).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use wasmcol_pdata::ExportTraceServiceRequest;
use wasmcol_pdata::proto::trace::v1::{ResourceSpans, ScopeSpans};

use crate::call::TraceHold;

/// A trace ID.
pub(crate) type TraceId = [u8; 16];

/// A bounded set of trace IDs that forgets the least recently used.
pub(crate) struct Lru {
    cap: usize,
    stamp: u64,
    ids: HashMap<TraceId, u64>,
    order: VecDeque<(TraceId, u64)>,
}

impl Lru {
    pub(crate) fn new(cap: usize) -> Self {
        Lru {
            cap,
            stamp: 0,
            ids: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` is present (it becomes the most recently used).
    pub(crate) fn hit(&mut self, id: &TraceId) -> bool {
        if !self.ids.contains_key(id) {
            return false;
        }
        self.put(*id);
        true
    }

    pub(crate) fn put(&mut self, id: TraceId) {
        if self.cap == 0 {
            return;
        }
        self.stamp += 1;
        self.ids.insert(id, self.stamp);
        self.order.push_back((id, self.stamp));
        while self.ids.len() > self.cap {
            let Some((old, stamp)) = self.order.pop_front() else {
                break;
            };
            // Entries touched again later are stale here; only the live one evicts.
            if self.ids.get(&old) == Some(&stamp) {
                self.ids.remove(&old);
            }
        }
        if self.order.len() > 4 * self.cap {
            let ids = &self.ids;
            self.order.retain(|(i, s)| ids.get(i) == Some(s));
        }
    }
}

/// The spans of one trace from one request: an encoded `ExportTraceServiceRequest` holding
/// one resource.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    pub(crate) bytes: Bytes,
    pub(crate) spans: usize,
}

impl Part {
    fn new(rs: ResourceSpans) -> Part {
        let spans = span_count(&rs);
        let bytes = ExportTraceServiceRequest {
            resource_spans: vec![rs],
        }
        .encode_to_vec();
        Part {
            bytes: Bytes::from(bytes),
            spans,
        }
    }
}

/// The encoding of one request holding every part, and its span count.
pub(crate) fn join(parts: &[Part]) -> (Bytes, usize) {
    if let [one] = parts {
        return (one.bytes.clone(), one.spans);
    }
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.bytes.len()).sum());
    for p in parts {
        out.extend_from_slice(&p.bytes);
    }
    (Bytes::from(out), parts.iter().map(|p| p.spans).sum())
}

/// An undecided trace.
pub(crate) struct Pending {
    generation: u64,
    /// When its first span arrived (Unix nanoseconds), for the plugin.
    pub(crate) first_unix_nano: u64,
    /// Its spans, by resource and scope as they arrived.
    pub(crate) parts: Vec<Part>,
    /// Spans held.
    pub(crate) spans: usize,
    /// Taken for a decision: spans arriving meanwhile wait for its outcome.
    deciding: bool,
}

enum Entry {
    Pending(Pending),
    /// Decided (sampled or not) at `at`; kept until evicted so late spans follow it.
    Decided {
        sampled: bool,
        at: Instant,
    },
}

/// What the buffer did with a batch.
#[derive(Default)]
pub(crate) struct Ingested {
    /// Late spans of traces decided "sampled": forward now.
    pub(crate) forward: Vec<Part>,
    /// Spans of traces decided "not sampled" that were dropped.
    pub(crate) dropped_spans: usize,
    /// New traces.
    pub(crate) new_traces: u64,
    /// Undecided traces evicted to make room, and their spans.
    pub(crate) evicted_traces: u64,
    /// Spans of those traces.
    pub(crate) evicted_spans: usize,
    /// Late spans answered by the sampled / non-sampled decision cache.
    pub(crate) cache_sampled: u64,
    /// Likewise for the non-sampled cache.
    pub(crate) cache_not_sampled: u64,
    /// For each late part of a trace decided and still held: the time since its decision
    /// (upstream's `sampling_late_span_age`).
    pub(crate) late_span_ages: Vec<std::time::Duration>,
}

/// The per-trace buffer. Not synchronised: the processor holds it under a mutex, never
/// across an await.
pub(crate) struct Buffer {
    hold: TraceHold,
    traces: HashMap<TraceId, Entry>,
    /// Every held trace ID in order of arrival: the eviction order.
    order: VecDeque<TraceId>,
    /// Undecided traces by due time: (id, generation, due).
    due: VecDeque<(TraceId, u64, Instant)>,
    generation: u64,
    sampled: Lru,
    not_sampled: Lru,
}

/// A trace taken for a decision.
pub(crate) struct Due {
    pub(crate) id: TraceId,
    pub(crate) first_unix_nano: u64,
    pub(crate) parts: Vec<Part>,
}

fn trace_id(id: &[u8]) -> TraceId {
    let mut out = [0u8; 16];
    if id.len() == 16 {
        out.copy_from_slice(id);
    }
    out
}

/// Splits resource spans by trace: one `ResourceSpans` per trace and resource, holding
/// that trace's spans under their scopes.
pub(crate) fn split(resource_spans: Vec<ResourceSpans>) -> Vec<(TraceId, ResourceSpans)> {
    let mut out: Vec<(TraceId, ResourceSpans)> = Vec::new();
    for rs in resource_spans {
        let mut by_trace: HashMap<TraceId, usize> = HashMap::new();
        let first = out.len();
        for ss in rs.scope_spans {
            let mut scopes: HashMap<TraceId, ScopeSpans> = HashMap::new();
            let mut seen: Vec<TraceId> = Vec::new();
            for span in ss.spans {
                let id = trace_id(&span.trace_id);
                scopes
                    .entry(id)
                    .or_insert_with(|| {
                        seen.push(id);
                        ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: Vec::new(),
                            schema_url: ss.schema_url.clone(),
                        }
                    })
                    .spans
                    .push(span);
            }
            for id in seen {
                let Some(scope) = scopes.remove(&id) else {
                    continue;
                };
                let at = *by_trace.entry(id).or_insert_with(|| {
                    out.push((
                        id,
                        ResourceSpans {
                            resource: rs.resource.clone(),
                            scope_spans: Vec::new(),
                            schema_url: rs.schema_url.clone(),
                        },
                    ));
                    out.len() - 1
                });
                out[at].1.scope_spans.push(scope);
            }
        }
        debug_assert!(out[first..].iter().all(|(_, r)| !r.scope_spans.is_empty()));
    }
    out
}

fn span_count(rs: &ResourceSpans) -> usize {
    rs.scope_spans.iter().map(|s| s.spans.len()).sum()
}

impl Buffer {
    pub(crate) fn new(hold: TraceHold) -> Self {
        Buffer {
            sampled: Lru::new(hold.sampled_cache),
            not_sampled: Lru::new(hold.non_sampled_cache),
            traces: HashMap::new(),
            order: VecDeque::new(),
            due: VecDeque::new(),
            generation: 0,
            hold,
        }
    }

    /// Traces held (undecided, or decided and remembered).
    pub(crate) fn len(&self) -> usize {
        self.traces.len()
    }

    /// Holds the spans of one request; `now` is the arrival time, `now_unix_nano` the same
    /// on the wall clock.
    pub(crate) fn ingest(
        &mut self,
        resource_spans: Vec<ResourceSpans>,
        now: Instant,
        now_unix_nano: u64,
    ) -> Ingested {
        let mut out = Ingested::default();
        for (id, rs) in split(resource_spans) {
            let rs = Part::new(rs);
            let n = rs.spans;
            match self.traces.get_mut(&id) {
                Some(Entry::Pending(p)) => {
                    p.parts.push(rs);
                    p.spans += n;
                }
                Some(Entry::Decided { sampled, at }) => {
                    out.late_span_ages.push(now.saturating_duration_since(*at));
                    if *sampled {
                        out.forward.push(rs);
                    } else {
                        out.dropped_spans += n;
                    }
                }
                None if self.sampled.hit(&id) => {
                    out.cache_sampled += 1;
                    out.forward.push(rs);
                }
                None if self.not_sampled.hit(&id) => {
                    out.cache_not_sampled += 1;
                    out.dropped_spans += n;
                }
                None => {
                    self.make_room(&mut out);
                    self.generation += 1;
                    self.traces.insert(
                        id,
                        Entry::Pending(Pending {
                            generation: self.generation,
                            first_unix_nano: now_unix_nano,
                            parts: vec![rs],
                            spans: n,
                            deciding: false,
                        }),
                    );
                    self.order.push_back(id);
                    self.due
                        .push_back((id, self.generation, now + self.hold.decision_wait));
                    out.new_traces += 1;
                }
            }
        }
        out
    }

    /// Evicts the oldest traces until one more fits. A trace being decided is skipped (its
    /// decision comes back for it), so the buffer may briefly hold a few more.
    fn make_room(&mut self, out: &mut Ingested) {
        let mut tries = self.order.len();
        while self.traces.len() >= self.hold.num_traces.max(1) && tries > 0 {
            tries -= 1;
            let Some(old) = self.order.pop_front() else {
                return;
            };
            match self.traces.remove(&old) {
                Some(Entry::Pending(p)) if p.deciding => {
                    self.traces.insert(old, Entry::Pending(p));
                    self.order.push_back(old);
                }
                Some(Entry::Pending(p)) => {
                    out.evicted_traces += 1;
                    out.evicted_spans += p.spans;
                }
                _ => {}
            }
        }
    }

    /// Takes the traces whose decision is due at `now` (every undecided one when `all`).
    pub(crate) fn take_due(&mut self, now: Instant, all: bool) -> Vec<Due> {
        let mut out = Vec::new();
        while let Some(&(id, generation, due)) = self.due.front() {
            if !all && due > now {
                break;
            }
            self.due.pop_front();
            if let Some(Entry::Pending(p)) = self.traces.get_mut(&id)
                && p.generation == generation
                && !p.deciding
            {
                p.deciding = true;
                out.push(Due {
                    id,
                    first_unix_nano: p.first_unix_nano,
                    parts: std::mem::take(&mut p.parts),
                });
                p.spans = 0;
            }
        }
        out
    }

    /// Records the decision on `id`, taken at `now`, and returns the spans that arrived while
    /// it was taken.
    pub(crate) fn decided(&mut self, id: TraceId, sampled: bool, now: Instant) -> Vec<Part> {
        let late = match self.traces.get_mut(&id) {
            Some(Entry::Pending(p)) => std::mem::take(&mut p.parts),
            _ => Vec::new(),
        };
        if self.traces.contains_key(&id) {
            self.traces.insert(id, Entry::Decided { sampled, at: now });
        }
        if sampled {
            self.sampled.put(id);
        } else {
            self.not_sampled.put(id);
        }
        late
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wasmcol_pdata::proto::trace::v1::Span;

    use super::*;

    fn hold(num_traces: usize) -> TraceHold {
        TraceHold {
            decision_wait: Duration::from_secs(1),
            num_traces,
            sampled_cache: 10,
            non_sampled_cache: 10,
            drop_pending_on_shutdown: false,
        }
    }

    fn spans(ids: &[u8]) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: ids
                    .iter()
                    .map(|&i| Span {
                        trace_id: vec![i; 16],
                        span_id: vec![i; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    #[test]
    fn split_groups_spans_by_trace_under_their_scope() {
        let parts = split(spans(&[1, 2, 1]));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, [1; 16]);
        assert_eq!(parts[0].1.scope_spans[0].spans.len(), 2);
        assert_eq!(parts[1].1.scope_spans[0].spans.len(), 1);
    }

    #[test]
    fn eviction_counts_undecided_traces_and_late_spans_follow_the_decision() {
        let t0 = Instant::now();
        let mut b = Buffer::new(hold(2));
        let got = b.ingest(spans(&[1, 2, 1]), t0, 0);
        assert_eq!(got.new_traces, 2);
        assert!(
            b.take_due(t0, false).is_empty(),
            "not due before decision_wait"
        );
        let due = b.take_due(t0 + Duration::from_secs(1), false);
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].parts.iter().map(|p| p.spans).sum::<usize>(), 2);
        // A span arriving while trace 1 is decided waits for its outcome.
        b.ingest(spans(&[1]), t0, 0);
        let decided_at = t0 + Duration::from_secs(1);
        assert_eq!(b.decided([1; 16], true, decided_at).len(), 1);
        b.decided([2; 16], false, decided_at);
        // Decided traces still in the buffer: late spans follow the decision, and their age
        // since it is measured.
        let late = b.ingest(spans(&[1, 2]), decided_at + Duration::from_secs(3), 0);
        assert_eq!(late.forward.len(), 1);
        assert_eq!(late.dropped_spans, 1);
        assert_eq!(late.late_span_ages, vec![Duration::from_secs(3); 2]);
        // Trace 3 evicts trace 1 (decided, not counted); trace 4 evicts 2; trace 5 evicts
        // the undecided 3: counted.
        let got = b.ingest(spans(&[3, 4, 5]), t0, 0);
        assert_eq!(got.evicted_traces, 1);
        assert_eq!(got.evicted_spans, 1);
        assert_eq!(b.len(), 2);
        // Trace 1 left the buffer: the sampled cache answers.
        let got = b.ingest(spans(&[1, 2]), t0, 0);
        assert_eq!(got.cache_sampled, 1);
        assert_eq!(got.cache_not_sampled, 1);
        assert_eq!(got.forward.len(), 1);
    }

    #[test]
    fn lru_forgets_the_least_recently_used() {
        let mut l = Lru::new(2);
        l.put([1; 16]);
        l.put([2; 16]);
        assert!(l.hit(&[1; 16]));
        l.put([3; 16]);
        assert!(l.hit(&[1; 16]));
        assert!(!l.hit(&[2; 16]));
        assert!(l.hit(&[3; 16]));
    }
}
