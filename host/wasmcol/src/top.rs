//! `wasmcol top`: a terminal view of a running collector's pipeline, read from its metrics
//! endpoint (Prometheus text): items per second accepted and sent per component, failures,
//! queue fill, the failover level and plugin errors. The same reading as the `zpages`
//! graph ([`wasmcol_components::zpages::stats`]).
//!
//! Blocking `std::net` on the main thread, like `healthcheck`: the command does nothing else.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmcol_components::zpages::stats::{self, Rates, Role, Snapshot};

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// A metrics page larger than this is refused rather than read into memory.
const MAX_BODY: u64 = 64 << 20;

/// GETs `url` (plain HTTP) and returns the body of a 200 answer.
fn scrape(url: &str) -> anyhow::Result<String> {
    let (authority, path) = crate::healthcheck::split_url(url)?;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{url}: no address for {authority}"))?;
    let mut s = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)
        .with_context(|| format!("{url}: cannot connect"))?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    s.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    // HTTP/1.0: the answer ends at close and is never chunked.
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: wasmcol-top\r\n\r\n"
    )
    .with_context(|| format!("{url}: cannot send the request"))?;
    let mut raw = Vec::new();
    s.take(MAX_BODY)
        .read_to_end(&mut raw)
        .with_context(|| format!("{url}: no complete answer"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .with_context(|| format!("{url}: not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        anyhow::bail!("{url}: answered {status:?}");
    }
    Ok(body.to_owned())
}

fn read(url: &str) -> anyhow::Result<(Instant, Snapshot)> {
    let text = scrape(url)?;
    Ok((Instant::now(), stats::snapshot(&stats::parse(&text))))
}

fn fmt(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

/// The table for `now`, with rates from `rates`.
pub fn table(now: &Snapshot, rates: &std::collections::BTreeMap<(Role, String), Rates>) -> String {
    let mut out = format!(
        "{:<10} {:<32} {:>11} {:>11} {:>9} {:>17} {:>6} {:>7}\n",
        "KIND", "ID", "ACCEPTED/s", "SENT/s", "FAILED", "QUEUE", "LEVEL", "ERRORS"
    );
    for ((role, id), t) in now {
        let r = rates.get(&(*role, id.clone())).copied().unwrap_or_default();
        let queue = match (t.queue_size, t.queue_capacity) {
            (Some(s), Some(c)) => format!("{}/{}", fmt(s), fmt(c)),
            _ => "-".to_owned(),
        };
        let level = t.level.map_or_else(|| "-".to_owned(), |l| format!("{l}"));
        let (acc, sent) = match role {
            Role::Receiver => (fmt(r.accepted), "-".to_owned()),
            Role::Exporter => ("-".to_owned(), fmt(r.sent)),
            Role::Processor => (fmt(r.accepted), fmt(r.sent)),
            Role::Connector => ("-".to_owned(), "-".to_owned()),
        };
        out.push_str(&format!(
            "{:<10} {:<32} {:>11} {:>11} {:>9} {:>17} {:>6} {:>7}\n",
            role.as_str(),
            id,
            acc,
            sent,
            fmt(t.failed),
            queue,
            level,
            fmt(t.errors)
        ));
    }
    out
}

/// Runs the view: scrapes `url` every `interval`; with `once`, prints one table (rates over
/// one interval) and returns.
pub fn run(url: &str, interval: Duration, once: bool) -> anyhow::Result<()> {
    let interval = interval.max(Duration::from_millis(100));
    let mut prev = read(url)?;
    loop {
        std::thread::sleep(interval);
        let now = read(url)?;
        let secs = now.0.duration_since(prev.0).as_secs_f64();
        let rates = stats::rates(&prev.1, &now.1, secs);
        let t = table(&now.1, &rates);
        let mut stdout = std::io::stdout().lock();
        if once {
            write!(stdout, "{t}")?;
            return Ok(());
        }
        // Clear and home: a plain ANSI terminal is enough.
        write!(stdout, "\x1b[H\x1b[2J{url} every {interval:?}\n\n{t}")?;
        stdout.flush()?;
        prev = now;
    }
}
