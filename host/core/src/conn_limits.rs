//! Timeouts and limits for the servers built on hyper ([`crate::http`]) and the listeners of
//! the gRPC receiver: a peer must not hold memory or file descriptors longer than the
//! operator allows, and running out of file descriptors on one listener must not stop the
//! others.
//!
//! - `read_header_timeout`: hyper's HTTP/1 header timer (it needs a timer to run at all); it
//!   also bounds the wait for the next request on a keep-alive connection.
//! - `read_timeout`: the time a handler gives the request body ([`ReadDeadline`]).
//! - `write_timeout`: the time from a request's headers to its response, as Go's
//!   `WriteTimeout`: when it runs out the connection is closed without an answer, while the
//!   handler still runs to its end (so work it began, such as enqueueing, is not cut short).
//! - `idle_timeout`: a connection with no request in flight for this long is closed (HTTP/2
//!   gets a GOAWAY). Counting requests rather than bytes means a peer trickling an
//!   incomplete request does not count as busy.
//! - `keep_alives_enabled: false`: HTTP/1 connections close after one request.
//! - a connection cap per listener, derived from the open-file limit: at the cap the
//!   listener stops accepting (new peers wait in the kernel's backlog) and says so once.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Default `read_header_timeout` (hyper's own default, once a timer is set).
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `read_timeout`: a 20 MiB body at about 350 KB/s.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `idle_timeout` (upstream confighttp's generic default).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeouts and the connection cap of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time to receive a request's headers (`None`: no limit).
    pub read_header_timeout: Option<Duration>,
    /// Time to receive a request's body after its headers (`None`: no limit).
    pub read_timeout: Option<Duration>,
    /// Time from a request's headers to the end of its response (`None`: no limit).
    pub write_timeout: Option<Duration>,
    /// Time a connection may stay without a request in flight (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// Whether an HTTP/1 connection serves more than one request.
    pub keep_alive: bool,
    /// Connections open at once on this listener.
    pub max_connections: usize,
}

/// Upstream confighttp's server timeout keys as written in a config: `None` is an absent key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutKeys {
    /// `read_timeout`.
    pub read_timeout: Option<Duration>,
    /// `read_header_timeout`.
    pub read_header_timeout: Option<Duration>,
    /// `write_timeout`.
    pub write_timeout: Option<Duration>,
    /// `idle_timeout`.
    pub idle_timeout: Option<Duration>,
    /// `keep_alives_enabled`.
    pub keep_alives_enabled: Option<bool>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            read_header_timeout: Some(DEFAULT_READ_HEADER_TIMEOUT),
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            write_timeout: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            keep_alive: true,
            max_connections: default_max_connections(),
        }
    }
}

impl ServerLimits {
    /// Limits from upstream's confighttp keys, with Go's `http.Server` meaning: an absent key
    /// takes wasmcol's default, an explicit zero means "none", except that a zero
    /// `read_header_timeout` or `idle_timeout` falls back to `read_timeout` as in Go.
    /// `write_timeout` has no default (Go's and upstream's: none).
    pub fn from_keys(keys: TimeoutKeys) -> ServerLimits {
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        let read = keys
            .read_timeout
            .map_or(Some(DEFAULT_READ_TIMEOUT), nonzero);
        let header = keys
            .read_header_timeout
            .map_or(Some(DEFAULT_READ_HEADER_TIMEOUT), |d| nonzero(d).or(read));
        let idle = keys
            .idle_timeout
            .map_or(Some(DEFAULT_IDLE_TIMEOUT), |d| nonzero(d).or(read));
        ServerLimits {
            read_header_timeout: header,
            read_timeout: read,
            write_timeout: keys.write_timeout.and_then(nonzero),
            idle_timeout: idle,
            keep_alive: keys.keep_alives_enabled.unwrap_or(true),
            max_connections: default_max_connections(),
        }
    }
}

/// A quarter of the soft open-file limit per listener (at least 64): a collector usually
/// has three listeners (gRPC, HTTP, metrics), so idle sockets on one of them can never take
/// the descriptors the others, the persistent queue and the plugin cache need.
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(4096);
    usize::try_from(soft / 4).unwrap_or(usize::MAX).max(64)
}

/// Raises the soft open-file limit to the hard one, as Go programs (upstream's collector
/// among them) do at start: the usual soft limit of 1024 is far below what a collector with
/// many clients needs. Returns the limit in force.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is left alone: the kernel refuses an unlimited soft one.
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
        && soft < hard
    {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// When the current request's body must have arrived; put in the request's extensions by
/// the server when `read_timeout` is set. A handler that reads the body should stop at this
/// instant and answer 408.
#[derive(Debug, Clone, Copy)]
pub struct ReadDeadline(pub Instant);

/// Per-connection bookkeeping for the idle timeout: requests in flight and since when none.
#[derive(Debug)]
pub struct ConnActivity {
    state: Mutex<(usize, Instant)>,
}

impl Default for ConnActivity {
    fn default() -> Self {
        ConnActivity {
            state: Mutex::new((0, Instant::now())),
        }
    }
}

impl ConnActivity {
    /// Marks a request as started; the guard marks it finished.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.state.lock().0 += 1;
        RequestGuard(self.clone())
    }

    /// When the connection became idle, or `None` while a request is in flight.
    pub fn idle_since(&self) -> Option<Instant> {
        let s = self.state.lock();
        (s.0 == 0).then_some(s.1)
    }
}

/// Ends a request on drop (also when the handler's future is dropped).
pub struct RequestGuard(Arc<ConnActivity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.0 = s.0.saturating_sub(1);
        if s.0 == 0 {
            s.1 = Instant::now();
        }
    }
}

/// Resolves once `activity` has had no request in flight for `idle`; pending forever when
/// `idle` is `None`.
pub async fn idle_expired(activity: &ConnActivity, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        let at = match activity.idle_since() {
            Some(since) => since + idle,
            // Busy: look again after one idle period (a request ends, then the clock runs).
            None => Instant::now() + idle,
        };
        tokio::time::sleep_until(at).await;
        if let Some(since) = activity.idle_since()
            && since.elapsed() >= idle
        {
            return;
        }
    }
}

/// The accepting side of one listener: a connection cap and back-off on accept errors.
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
}

/// The back-off after a failed accept grows from this...
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// ...to this, like Go's `http.Server`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Acceptor {
    /// Accepts on `listener`, at most `max_connections` open at once.
    pub fn new(listener: TcpListener, max_connections: usize) -> Acceptor {
        let max = max_connections.max(1);
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The next connection and the slot it holds until dropped. Waits while the listener is
    /// at its cap (logged once per episode); on an accept error (out of file descriptors,
    /// usually) logs once per episode and backs off, doubling up to 1 s, so a spinning
    /// accept loop does not starve the other listeners' tasks.
    pub async fn accept(&self) -> (TcpStream, std::net::SocketAddr, OwnedSemaphorePermit) {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(
                    endpoint = %self.endpoint(),
                    max_connections = self.max,
                    "connection limit reached; new connections wait until one closes"
                );
                match self.slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed; wait forever rather than panic.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        let mut backoff = ACCEPT_BACKOFF_MIN;
        let mut failures = 0u64;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    if failures > 0 {
                        tracing::info!(endpoint = %self.endpoint(), failures, "accepting connections again");
                    }
                    return (stream, peer, permit);
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(endpoint = %self.endpoint(), error = %e, "accept failed; backing off");
                    }
                    failures += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    fn endpoint(&self) -> String {
        self.listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_go_semantics() {
        let d = ServerLimits::from_keys(TimeoutKeys::default());
        assert_eq!(d, ServerLimits::default());
        assert_eq!(d.read_header_timeout, Some(DEFAULT_READ_HEADER_TIMEOUT));
        assert_eq!(d.read_timeout, Some(DEFAULT_READ_TIMEOUT));
        assert_eq!(d.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        assert_eq!(d.write_timeout, None);
        assert!(d.keep_alive);
        let s = Duration::from_secs;
        let zero = Some(Duration::ZERO);
        let l = ServerLimits::from_keys(TimeoutKeys {
            read_timeout: Some(s(5)),
            read_header_timeout: zero,
            idle_timeout: zero,
            write_timeout: Some(s(7)),
            keep_alives_enabled: Some(false),
        });
        assert_eq!(l.read_header_timeout, Some(s(5)));
        assert_eq!(l.idle_timeout, Some(s(5)));
        assert_eq!(l.write_timeout, Some(s(7)));
        assert!(!l.keep_alive);
        let l = ServerLimits::from_keys(TimeoutKeys {
            read_timeout: zero,
            read_header_timeout: zero,
            idle_timeout: Some(s(2)),
            write_timeout: zero,
            keep_alives_enabled: Some(true),
        });
        assert_eq!(l.read_timeout, None);
        assert_eq!(l.read_header_timeout, None);
        assert_eq!(l.idle_timeout, Some(s(2)));
        assert_eq!(l.write_timeout, None);
        assert!(default_max_connections() >= 64);
    }

    /// Scenario: a connection is busy for 10 s, then idle; idle timeout 3 s (paused time).
    /// Guarantees: the idle clock starts when the last request ends, not at connect.
    #[tokio::test(start_paused = true)]
    async fn idle_clock_starts_when_the_last_request_ends() {
        let a = Arc::new(ConnActivity::default());
        let guard = a.begin();
        let started = Instant::now();
        let watcher = {
            let a = a.clone();
            tokio::spawn(async move { idle_expired(&a, Some(Duration::from_secs(3))).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!watcher.is_finished());
        drop(guard);
        watcher.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(13));
    }
}
