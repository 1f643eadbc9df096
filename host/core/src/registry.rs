//! Factories keyed by type name, with upstream's old and new names as aliases.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmcol_config::{Kind, Value};

use crate::{
    BuildError, ChainBuilder, Connector, ConnectorRoutes, ConsumerRef, CreateContext,
    ExporterParts, Extension, Processor, Receiver, ReceiverConsumers, Signal, SimpleChain,
};

/// Builds receivers of one type.
pub trait ReceiverFactory: Send + Sync {
    /// Signals the receiver can produce.
    fn signals(&self) -> &[Signal] {
        &Signal::ALL
    }
    /// Builds one receiver instance (shared by every pipeline that lists its id).
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        consumers: ReceiverConsumers,
    ) -> Result<Arc<dyn Receiver>, BuildError>;
}

/// Builds processors of one type.
pub trait ProcessorFactory: Send + Sync {
    /// Signals the processor handles.
    fn signals(&self) -> &[Signal] {
        &Signal::ALL
    }
    /// Builds one processor instance for one pipeline, forwarding to `next`.
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, BuildError>;
}

/// Builds exporters of one type.
pub trait ExporterFactory: Send + Sync {
    /// Signals the exporter can send.
    fn signals(&self) -> &[Signal] {
        &Signal::ALL
    }
    /// Builds the sender for one signal; the registry's chain wraps it.
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        signal: Signal,
    ) -> Result<ExporterParts, BuildError>;
}

/// Builds connectors of one type.
pub trait ConnectorFactory: Send + Sync {
    /// Whether data of `from` can be turned into data of `to`.
    fn supports(&self, from: Signal, to: Signal) -> bool {
        from == to
    }
    /// Builds one connector instance for a signal pair, feeding `routes`.
    fn create(
        &self,
        ctx: &CreateContext,
        config: &Value,
        from: Signal,
        to: Signal,
        routes: ConnectorRoutes,
    ) -> Result<Arc<dyn Connector>, BuildError>;
}

/// Builds extensions of one type.
pub trait ExtensionFactory: Send + Sync {
    /// Builds the extension.
    fn create(&self, ctx: &CreateContext, config: &Value)
    -> Result<Arc<dyn Extension>, BuildError>;
}

/// A registered factory of any kind.
#[derive(Clone)]
pub enum Factory {
    /// A receiver factory.
    Receiver(Arc<dyn ReceiverFactory>),
    /// A processor factory.
    Processor(Arc<dyn ProcessorFactory>),
    /// An exporter factory.
    Exporter(Arc<dyn ExporterFactory>),
    /// A connector factory.
    Connector(Arc<dyn ConnectorFactory>),
    /// An extension factory.
    Extension(Arc<dyn ExtensionFactory>),
}

impl Factory {
    fn kind(&self) -> Kind {
        match self {
            Factory::Receiver(_) => Kind::Receiver,
            Factory::Processor(_) => Kind::Processor,
            Factory::Exporter(_) => Kind::Exporter,
            Factory::Connector(_) => Kind::Connector,
            Factory::Extension(_) => Kind::Extension,
        }
    }
}

/// One registered type, for `wasmcol components`.
#[derive(Clone)]
pub struct Entry {
    /// The section.
    pub kind: Kind,
    /// The current type name.
    pub name: String,
    /// Deprecated names still accepted.
    pub aliases: Vec<String>,
    /// One line saying what it is.
    pub description: String,
    /// The factory.
    pub factory: Factory,
}

/// Every component type the binary knows.
#[derive(Clone)]
pub struct Registry {
    entries: BTreeMap<(Kind, String), Entry>,
    aliases: BTreeMap<(Kind, String), String>,
    chain: Arc<dyn ChainBuilder>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            entries: BTreeMap::new(),
            aliases: BTreeMap::new(),
            chain: Arc::new(SimpleChain),
        }
    }
}

impl Registry {
    /// An empty registry with the simple exporter chain.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a factory under `name` and `aliases`.
    pub fn register(&mut self, name: &str, aliases: &[&str], description: &str, factory: Factory) {
        let kind = factory.kind();
        for a in aliases {
            self.aliases
                .insert((kind, (*a).to_owned()), name.to_owned());
        }
        self.entries.insert(
            (kind, name.to_owned()),
            Entry {
                kind,
                name: name.to_owned(),
                aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
                description: description.to_owned(),
                factory,
            },
        );
    }

    /// Replaces the exporter chain (the delivery crate registers queue + retry here).
    pub fn set_chain(&mut self, chain: Arc<dyn ChainBuilder>) {
        self.chain = chain;
    }

    /// The exporter chain.
    pub fn chain(&self) -> &Arc<dyn ChainBuilder> {
        &self.chain
    }

    /// The entry for `ty` in `kind`, through aliases.
    pub fn lookup(&self, kind: Kind, ty: &str) -> Option<&Entry> {
        let name = self
            .aliases
            .get(&(kind, ty.to_owned()))
            .map(String::as_str)
            .unwrap_or(ty);
        self.entries.get(&(kind, name.to_owned()))
    }

    /// Type names of a kind, for "valid values" in errors.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        self.entries
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// All entries, by kind then name.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }
}
