//! Routing for the `load_balancing` exporter: upstream's consistent-hash ring ([`ring`]), the
//! exporter's config ([`config`]) and the split of a request per backend ([`split`]). The exporter that uses them (resolvers at run time,
//! per-backend delivery chains) comes next; until then the type is not registered.

#![forbid(unsafe_code)]

pub mod config;
pub mod ring;
pub mod split;

pub use config::{Checked, Config, Resolver, RoutingKey};
pub use ring::Ring;
pub use split::{RouteError, split_traces};
