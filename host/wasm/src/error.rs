//! Why a plugin could not be loaded, or a call into it failed.

use std::time::Duration;

/// Why a plugin could not be loaded or configured.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a component this host can run.
    #[error("not a valid plugin component: {0}")]
    Invalid(String),
    /// The component does not export the `wasmcol:plugin/processor` world.
    #[error("the component does not implement wasmcol:plugin/processor@0.1.0: {0}")]
    Contract(String),
    /// The plugin failed while describing itself or being configured.
    #[error("{0}")]
    Call(#[from] CallError),
    /// Engine or cache trouble.
    #[error("{0}")]
    Runtime(String),
}

/// Why a call into a plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin trapped (panic, bad memory access, host-call misuse).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline (or out of fuel).
    #[error("plugin call exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin exceeded its memory limit of {0} MiB")]
    Memory(u64),
    /// The plugin returned an error.
    #[error("plugin returned an error: {message}")]
    Plugin {
        /// Whether the plugin said retrying cannot help.
        permanent: bool,
        /// The plugin's message.
        message: String,
    },
}

impl CallError {
    /// The `reason` label of `wasmcol_plugin_errors`.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Timeout(_) => "timeout",
            CallError::Memory(_) => "memory",
            CallError::Plugin { .. } => "error",
        }
    }

    /// Whether the failure may be caused by the data alone, so that the same batch is worth
    /// trying once more on a fresh instance to tell (a trap, the memory budget). A timeout
    /// depends on load as much as on data, and a plugin's own error says what it means.
    pub fn may_be_the_data(&self) -> bool {
        matches!(self, CallError::Trap(_) | CallError::Memory(_))
    }

    /// What a client may be told: the kind of failure, never a backtrace or the plugin's
    /// output (those are logged).
    pub fn public_reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Timeout(_) => "time limit",
            CallError::Memory(_) => "memory limit",
            CallError::Plugin { .. } => "plugin error",
        }
    }

    /// Whether the instance must be thrown away (any trap leaves it unusable).
    pub fn poisons(&self) -> bool {
        !matches!(self, CallError::Plugin { .. })
    }
}
