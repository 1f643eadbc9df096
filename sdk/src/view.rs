//! Friendly views over a batch: iterate resources, scopes and items, read and write
//! attributes with Rust types.
//!
//! Every view is a small `Copy` value holding a reference to the batch and an index; nothing
//! is read until you ask. Views are invalidated by [`Traces::retain`] (indices renumber).

use crate::Value;
use crate::ops::{
    BatchOps, EventRef, ItemRef, Level, LogInfo, LogOps, MetricOps, PointInfo, ScopeInfo, ScopeRef,
    SetMode, Signal, SpanInfo, Target, TraceOps,
};

/// One attribute set (of a resource, scope, item or event).
#[derive(Clone, Copy)]
pub struct Attributes<'a> {
    ops: &'a dyn BatchOps,
    at: Target,
}

impl<'a> Attributes<'a> {
    /// The set at `at`.
    pub fn new(ops: &'a dyn BatchOps, at: Target) -> Self {
        Attributes { ops, at }
    }

    /// Which set this is.
    pub fn target(&self) -> Target {
        self.at
    }

    /// One value.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.ops.attribute(self.at, key)
    }

    /// One string value (`None` when absent or not a string).
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether the key is present.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Every attribute, in order.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.ops.attributes(self.at)
    }

    /// Sets the key only when absent; whether it was set.
    pub fn insert(&self, key: &str, value: impl Into<Value>) -> bool {
        self.ops
            .set_attribute(self.at, key, &value.into(), SetMode::Insert)
    }

    /// Sets the key only when present; whether it was set.
    pub fn update(&self, key: &str, value: impl Into<Value>) -> bool {
        self.ops
            .set_attribute(self.at, key, &value.into(), SetMode::Update)
    }

    /// Sets the key.
    pub fn upsert(&self, key: &str, value: impl Into<Value>) -> bool {
        self.ops
            .set_attribute(self.at, key, &value.into(), SetMode::Upsert)
    }

    /// Sets the key by `mode`, borrowing the value.
    pub fn set(&self, key: &str, value: &Value, mode: SetMode) -> bool {
        self.ops.set_attribute(self.at, key, value, mode)
    }

    /// Removes the key; whether it was present.
    pub fn remove(&self, key: &str) -> bool {
        self.ops.remove_attribute(self.at, key)
    }

    /// Replaces every attribute of the set.
    pub fn replace(&self, attributes: &[(String, Value)]) {
        self.ops.replace_attributes(self.at, attributes)
    }
}

/// A resource.
#[derive(Clone, Copy)]
pub struct Resource<'a> {
    ops: &'a dyn BatchOps,
    index: u32,
}

impl<'a> Resource<'a> {
    /// Its index in the batch.
    pub fn index(&self) -> u32 {
        self.index
    }
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.ops, Target::Resource(self.index))
    }
    /// Its scopes.
    pub fn scopes(&self) -> impl Iterator<Item = Scope<'a>> + 'a + use<'a> {
        let (ops, r) = (self.ops, self.index);
        (0..ops.scope_count(r)).map(move |s| Scope {
            ops,
            at: ScopeRef {
                resource: r,
                scope: s,
            },
        })
    }
}

/// An instrumentation scope.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    ops: &'a dyn BatchOps,
    at: ScopeRef,
}

impl<'a> Scope<'a> {
    /// Where it is.
    pub fn at(&self) -> ScopeRef {
        self.at
    }
    /// Name and version.
    pub fn info(&self) -> ScopeInfo {
        self.ops.scope_info(self.at)
    }
    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.ops, Target::Scope(self.at))
    }
    /// Number of items in it.
    pub fn item_count(&self) -> u32 {
        self.ops.item_count(self.at.resource, self.at.scope)
    }
    /// The resource it belongs to.
    pub fn resource(&self) -> Resource<'a> {
        Resource {
            ops: self.ops,
            index: self.at.resource,
        }
    }
}

/// Every item of a batch in order.
fn items(ops: &dyn BatchOps) -> impl Iterator<Item = ItemRef> + '_ {
    (0..ops.resource_count()).flat_map(move |r| {
        (0..ops.scope_count(r)).flat_map(move |s| {
            (0..ops.item_count(r, s)).map(move |i| ItemRef {
                resource: r,
                scope: s,
                item: i,
            })
        })
    })
}

macro_rules! batch_common {
    ($name:ident, $item:ident, $items:ident) => {
        batch_common!($name);

        impl<'a> $name<'a> {
            /// Every item, in batch order (the order `retain` masks use).
            pub fn $items(&self) -> impl Iterator<Item = $item<'a>> + 'a + use<'a> {
                let ops = self.ops;
                items(self.ops).map(move |at| $item { ops, at })
            }
        }
    };
    ($name:ident) => {
        impl<'a> $name<'a> {
            /// The raw interface, for calls the views do not wrap.
            pub fn ops(&self) -> &'a dyn BatchOps {
                self.ops
            }

            /// Number of items in the batch.
            pub fn len(&self) -> usize {
                self.ops.total_items() as usize
            }

            /// Whether the batch holds no item.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The resources.
            pub fn resources(&self) -> impl Iterator<Item = Resource<'a>> + 'a + use<'a> {
                let ops: &'a dyn BatchOps = self.ops;
                (0..ops.resource_count()).map(move |index| Resource { ops, index })
            }

            /// Every scope of every resource.
            pub fn scopes(&self) -> impl Iterator<Item = Scope<'a>> + 'a + use<'a> {
                self.resources().flat_map(|r| r.scopes())
            }

            /// Removes `key` from every set of `level` in one host call; how many had it.
            pub fn remove_all(&self, level: Level, key: &str) -> u32 {
                self.ops.remove_attribute_all(level, key)
            }

            /// The values of request context `key` (a request header such as `x-tenant`, or
            /// `auth.<attribute>`); empty when absent.
            pub fn context(&self, key: &str) -> Vec<String> {
                self.ops.context(key)
            }

            /// Sets `key` on every set of `level` in one host call; how many changed.
            pub fn set_all(&self, level: Level, key: &str, value: &Value, mode: SetMode) -> u32 {
                self.ops.set_attribute_all(level, key, value, mode)
            }

            /// Reads `key` from every set of `level` in one host call.
            pub fn get_all(&self, level: Level, key: &str) -> Vec<Option<Value>> {
                self.ops.attribute_all(level, key)
            }

            /// Keeps the items whose mask entry is true (batch order); returns how many remain.
            /// Item views taken before are invalid afterwards.
            pub fn retain(&self, keep: &[bool]) -> usize {
                self.ops.retain(keep) as usize
            }
        }
    };
}

/// A batch of any signal: what [`crate::Processor::process`] gets, for edits that do not
/// depend on the signal (tagging, redacting, filtering by attribute).
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    ops: &'a dyn BatchOps,
    signal: Signal,
}

impl<'a> Batch<'a> {
    /// Wraps a raw handle of a batch of `signal`.
    pub fn new(ops: &'a dyn BatchOps, signal: Signal) -> Self {
        Batch { ops, signal }
    }

    /// The batch's signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }
}
batch_common!(Batch, Item, items);

impl<'a> From<Traces<'a>> for Batch<'a> {
    fn from(traces: Traces<'a>) -> Self {
        Batch::new(traces.ops, Signal::Traces)
    }
}

impl<'a> From<Metrics<'a>> for Batch<'a> {
    fn from(metrics: Metrics<'a>) -> Self {
        Batch::new(metrics.ops, Signal::Metrics)
    }
}

impl<'a> From<Logs<'a>> for Batch<'a> {
    fn from(logs: Logs<'a>) -> Self {
        Batch::new(logs.ops, Signal::Logs)
    }
}

/// A batch of spans.
#[derive(Clone, Copy)]
pub struct Traces<'a> {
    ops: &'a dyn TraceOps,
}

impl<'a> Traces<'a> {
    /// Wraps a raw handle.
    pub fn new(traces: &'a dyn TraceOps) -> Self {
        Traces { ops: traces }
    }

    /// The raw span interface.
    pub fn trace_ops(&self) -> &'a dyn TraceOps {
        self.ops
    }

    /// Every span's trace id in batch order (one host call).
    pub fn trace_ids(&self) -> Vec<[u8; 16]> {
        chunk16(&self.ops.trace_ids())
    }

    /// Every span's tracestate in batch order (one host call).
    pub fn trace_states(&self) -> Vec<String> {
        self.ops.trace_states()
    }
}
batch_common!(Traces, Span, spans);

/// A batch of metric data points.
#[derive(Clone, Copy)]
pub struct Metrics<'a> {
    ops: &'a dyn MetricOps,
}

impl<'a> Metrics<'a> {
    /// Wraps a raw handle.
    pub fn new(metrics: &'a dyn MetricOps) -> Self {
        Metrics { ops: metrics }
    }

    /// The raw metric interface.
    pub fn metric_ops(&self) -> &'a dyn MetricOps {
        self.ops
    }
}
batch_common!(Metrics, Point, points);

/// A batch of log records.
#[derive(Clone, Copy)]
pub struct Logs<'a> {
    ops: &'a dyn LogOps,
}

impl<'a> Logs<'a> {
    /// Wraps a raw handle.
    pub fn new(logs: &'a dyn LogOps) -> Self {
        Logs { ops: logs }
    }

    /// The raw log interface.
    pub fn log_ops(&self) -> &'a dyn LogOps {
        self.ops
    }

    /// Every record's trace id in batch order (zeros where a record has none).
    pub fn trace_ids(&self) -> Vec<[u8; 16]> {
        chunk16(&self.ops.trace_ids())
    }
}
batch_common!(Logs, Record, records);

fn chunk16(flat: &[u8]) -> Vec<[u8; 16]> {
    flat.chunks_exact(16)
        .map(|c| {
            let mut id = [0u8; 16];
            id.copy_from_slice(c);
            id
        })
        .collect()
}

macro_rules! item_common {
    ($name:ident) => {
        impl<'a> $name<'a> {
            /// Where it is.
            pub fn at(&self) -> ItemRef {
                self.at
            }
            /// Its attributes.
            pub fn attributes(&self) -> Attributes<'a> {
                Attributes::new(self.ops, Target::Item(self.at))
            }
            /// The resource it belongs to.
            pub fn resource(&self) -> Resource<'a> {
                Resource {
                    ops: self.ops,
                    index: self.at.resource,
                }
            }
            /// The scope it belongs to.
            pub fn scope(&self) -> Scope<'a> {
                Scope {
                    ops: self.ops,
                    at: ScopeRef {
                        resource: self.at.resource,
                        scope: self.at.scope,
                    },
                }
            }
        }
    };
}

/// An item of a [`Batch`]: a span, data point or log record.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    ops: &'a dyn BatchOps,
    at: ItemRef,
}
item_common!(Item);

/// A span.
#[derive(Clone, Copy)]
pub struct Span<'a> {
    ops: &'a dyn TraceOps,
    at: ItemRef,
}
item_common!(Span);

impl<'a> Span<'a> {
    /// Its fields (one host call).
    pub fn info(&self) -> SpanInfo {
        self.ops.span(self.at)
    }
    /// Replaces its tracestate.
    pub fn set_trace_state(&self, trace_state: &str) {
        self.ops.set_trace_state(self.at, trace_state)
    }
    /// Renames it.
    pub fn set_name(&self, name: &str) {
        self.ops.set_span_name(self.at, name)
    }
    /// The attributes of its event `event`.
    pub fn event_attributes(&self, event: u32) -> Attributes<'a> {
        Attributes::new(
            self.ops,
            Target::Event(EventRef {
                span: self.at,
                event,
            }),
        )
    }
}

/// A metric data point.
#[derive(Clone, Copy)]
pub struct Point<'a> {
    ops: &'a dyn MetricOps,
    at: ItemRef,
}
item_common!(Point);

impl<'a> Point<'a> {
    /// Its metric and timestamps.
    pub fn info(&self) -> PointInfo {
        self.ops.point(self.at)
    }
}

/// A log record.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    ops: &'a dyn LogOps,
    at: ItemRef,
}
item_common!(Record);

impl<'a> Record<'a> {
    /// Its fields.
    pub fn info(&self) -> LogInfo {
        self.ops.log_record(self.at)
    }
}
