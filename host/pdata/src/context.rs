//! The request context a batch carries: upstream's `client.Info` metadata (the request's
//! headers, keys lower case) and what the authenticator established (`auth.<attribute>`).
//!
//! Receivers fill it only with `include_metadata: true`, as upstream does; everywhere else it
//! is empty and costs one pointer. It is shared (`Arc`), so a fan-out or a copy-on-write
//! batch copies no strings.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Request metadata by key, each key with its values in the order received.
///
/// Keys are stored lower case; [`RequestContext::get`] matches them without case, as
/// upstream's `client.Metadata.Get` does for header names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestContext {
    entries: Option<Arc<BTreeMap<String, Vec<String>>>>,
}

impl RequestContext {
    /// A context holding `entries` (keys are lower-cased; values of equal keys are joined in
    /// order; keys without values are dropped).
    pub fn new<K: AsRef<str>>(entries: impl IntoIterator<Item = (K, Vec<String>)>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, mut v) in entries {
            if v.is_empty() {
                continue;
            }
            map.entry(k.as_ref().to_ascii_lowercase())
                .or_default()
                .append(&mut v);
        }
        if map.is_empty() {
            return RequestContext::default();
        }
        RequestContext {
            entries: Some(Arc::new(map)),
        }
    }

    /// Whether the context holds nothing (a receiver without `include_metadata`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_none()
    }

    /// The values of `key`, matched without case; empty when absent.
    pub fn get(&self, key: &str) -> &[String] {
        let Some(map) = &self.entries else {
            return &[];
        };
        if let Some(v) = map.get(key) {
            return v;
        }
        map.get(&key.to_ascii_lowercase())
            .map_or(&[][..], Vec::as_slice)
    }

    /// Every key with its values, keys in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries
            .iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// The context restricted to `keys` (the batch processor's `metadata_keys`): what a batch
    /// built from requests that agree on those keys can truthfully carry.
    pub fn subset(&self, keys: &[String]) -> RequestContext {
        RequestContext::new(keys.iter().map(|k| (k.as_str(), self.get(k).to_vec())))
    }
}
