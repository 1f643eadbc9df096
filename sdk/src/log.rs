//! Log lines to the collector's log (tagged with the processor id by the host).
//!
//! Natively (in unit tests) lines go to stderr.

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Unexpected but handled.
    Warn,
    /// Failed.
    Error,
}

/// Writes one line.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::guest::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Writes a debug line.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}

/// Writes an info line.
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}

/// Writes a warning.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}

/// Writes an error line.
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}
