//! `wasmcol healthcheck URL`: one HTTP GET with a deadline, for a container's `HEALTHCHECK`
//! (the image has no curl). Success is a 2xx answer; anything else is an error that says what
//! went wrong. Plain HTTP only: the `health_check` extension serves no TLS.
//!
//! Blocking `std::net` on the main thread: the command does nothing else, so it needs no
//! runtime, and every step (resolve aside) is bounded by what is left of the deadline.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// What the status line's code was, when the check failed on it.
#[derive(Debug)]
pub struct Unhealthy(pub u16);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "answered HTTP {} (healthy is 2xx)", self.0)
    }
}

impl std::error::Error for Unhealthy {}

/// `host:port` and the path of an `http://` URL.
pub(crate) fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        anyhow::bail!(
            "{url:?}: only http:// URLs are supported (the health_check extension serves no TLS)"
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        anyhow::bail!("{url:?}: no host");
    }
    // Without a port, HTTP's default, as any client would.
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// GETs `url` and returns its status code if it is 2xx; an error otherwise, including when
/// no answer came within `timeout` (connecting, writing and reading the status line
/// together).
pub fn check(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .with_context(|| format!("{url}: no answer within {timeout:?}"))
    };
    let (authority, path) = split_url(url)?;
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {authority}"))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    let mut stream = stream.with_context(|| {
        format!(
            "{url}: cannot connect ({})",
            last.unwrap_or_else(|| "no address".into())
        )
    })?;
    stream.set_write_timeout(Some(left()?))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wasmcol-healthcheck\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("{url}: cannot send the request"))?;
    stream.set_read_timeout(Some(left()?))?;
    // A status line is short: a peer sending an endless line must not grow the memory.
    let mut line = Vec::new();
    let n = BufReader::new(stream.take(8192))
        .read_until(b'\n', &mut line)
        .with_context(|| match left() {
            Ok(_) => format!("{url}: no answer"),
            Err(_) => format!("{url}: no answer within {timeout:?}"),
        })?;
    if n == 0 {
        anyhow::bail!("{url}: connection closed before an answer");
    }
    let line = String::from_utf8_lossy(&line);
    let code = status_code(&line)
        .with_context(|| format!("{url}: not an HTTP answer: {:?}", line.trim_end()))?;
    if (200..300).contains(&code) {
        Ok(code)
    } else {
        Err(anyhow::Error::new(Unhealthy(code)).context(url.to_string()))
    }
}

/// The code of an `HTTP/1.x NNN reason` status line.
fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on loopback that answers `answer` (or nothing, holding the
    /// connection open, when `None`) and returns the request it read.
    fn serve(answer: Option<&'static str>) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health/status", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            match answer {
                Some(a) => s.write_all(a.as_bytes()).unwrap(),
                None => std::thread::sleep(Duration::from_secs(2)),
            }
            String::from_utf8(req).unwrap()
        });
        (url, h)
    }

    #[test]
    fn two_hundred_is_healthy_and_the_path_is_sent() {
        let (url, h) = serve(Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"));
        assert_eq!(check(&url, Duration::from_secs(5)).unwrap(), 200);
        let req = h.join().unwrap();
        assert!(req.starts_with("GET /health/status HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nHost: 127.0.0.1:"), "{req}");
    }

    #[test]
    fn five_hundred_three_is_unhealthy_with_the_code() {
        let (url, h) = serve(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        let e = check(&url, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.downcast_ref::<Unhealthy>().map(|u| u.0), Some(503));
        assert!(format!("{e:#}").contains("answered HTTP 503"), "{e:#}");
        h.join().unwrap();
    }

    #[test]
    fn a_silent_server_fails_within_the_timeout() {
        let (url, h) = serve(None);
        let start = Instant::now();
        let e = check(&url, Duration::from_millis(300)).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(format!("{e:#}").contains("no answer within"), "{e:#}");
        h.join().unwrap();
    }

    #[test]
    fn refused_connections_garbage_and_https_are_errors() {
        // A port nothing listens on: bind, note it, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = check(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).unwrap_err();
        assert!(format!("{e:#}").contains("cannot connect"), "{e:#}");
        let (url, h) = serve(Some("SSH-2.0-OpenSSH\r\n"));
        let e = check(&url, Duration::from_secs(5)).unwrap_err();
        assert!(format!("{e:#}").contains("not an HTTP answer"), "{e:#}");
        h.join().unwrap();
        let e = check("https://127.0.0.1:13133/", Duration::from_secs(1)).unwrap_err();
        assert!(format!("{e:#}").contains("only http://"), "{e:#}");
    }

    #[test]
    fn urls_split_with_default_port_and_path() {
        assert_eq!(
            split_url("http://localhost").unwrap(),
            ("localhost:80".into(), "/".into())
        );
        assert_eq!(
            split_url("http://[::1]:13133/x").unwrap(),
            ("[::1]:13133".into(), "/x".into())
        );
        assert_eq!(
            split_url("http://[::1]/").unwrap(),
            ("[::1]:80".into(), "/".into())
        );
        assert!(split_url("http:///x").is_err());
        assert_eq!(status_code("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code("HTTP/1.1 20 x"), None);
    }
}
