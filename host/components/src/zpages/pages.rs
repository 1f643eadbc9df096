//! The pages and the graph's JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use parking_lot::Mutex;
use serde::Serialize;
use wasmcol_core::Metrics;
use wasmcol_core::component::{ServiceStatus, Topology};

use super::stats::{self, Rates, Role, Sampler, Totals};
use crate::timefmt::{go_duration, rfc3339};

/// Rates are measured over at least this long, however often pages are loaded.
const RATE_WINDOW_SECS: f64 = 1.0;

/// What the pages read.
pub(super) struct State {
    metrics: Metrics,
    status: Arc<ServiceStatus>,
    started: SystemTime,
    sampler: Mutex<Sampler>,
}

/// One component in the graph's JSON.
#[derive(Serialize)]
struct Node {
    role: Role,
    id: String,
    #[serde(flatten)]
    totals: Totals,
    accepted_per_s: f64,
    sent_per_s: f64,
}

/// A pipeline in the graph's JSON.
#[derive(Serialize)]
struct Pipeline<'a> {
    id: &'a str,
    receivers: &'a [String],
    processors: &'a [String],
    exporters: &'a [String],
}

/// `/debug/graphz.json`.
#[derive(Serialize)]
struct Graph<'a> {
    version: &'static str,
    uptime: String,
    ready: bool,
    pipelines: Vec<Pipeline<'a>>,
    connectors: &'a [String],
    extensions: &'a [String],
    components: Vec<Node>,
}

type Response = http::Response<Full<Bytes>>;

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Every configured component with its role, in pipeline order, once.
fn components(t: &Topology) -> Vec<(Role, String)> {
    let mut seen = Vec::new();
    let conn = |id: &String| t.connectors.contains(id);
    for p in &t.pipelines {
        let ids = p
            .receivers
            .iter()
            .map(|id| {
                (
                    if conn(id) {
                        Role::Connector
                    } else {
                        Role::Receiver
                    },
                    id,
                )
            })
            .chain(p.processors.iter().map(|id| (Role::Processor, id)))
            .chain(p.exporters.iter().map(|id| {
                (
                    if conn(id) {
                        Role::Connector
                    } else {
                        Role::Exporter
                    },
                    id,
                )
            }));
        for (r, id) in ids {
            if !seen.iter().any(|(sr, sid)| *sr == r && sid == id) {
                seen.push((r, id.clone()));
            }
        }
    }
    seen
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em;background:#fafafa;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#eee}nav a{margin-right:1em}h1{font-size:1.3em}";

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head>\
         <body><nav><a href=\"servicez\">servicez</a><a href=\"pipelinez\">pipelinez</a>\
         <a href=\"extensionz\">extensionz</a><a href=\"graphz\">graphz</a></nav><h1>{title}</h1>{body}</body></html>"
    );
    wasmcol_core::http::response(http::StatusCode::OK, "text/html; charset=utf-8", html)
}

impl State {
    pub(super) fn new(metrics: Metrics, status: Arc<ServiceStatus>, started: SystemTime) -> Self {
        State {
            metrics,
            status,
            started,
            sampler: Mutex::new(Sampler::new(RATE_WINDOW_SECS)),
        }
    }

    fn topology(&self) -> Arc<Topology> {
        self.status.topology().unwrap_or_default()
    }

    fn uptime(&self) -> String {
        go_duration(
            SystemTime::now()
                .duration_since(self.started)
                .unwrap_or_default(),
        )
    }

    /// The answer for `path`.
    pub(super) fn respond(&self, path: &str) -> Response {
        match path.trim_end_matches('/') {
            "/debug/servicez" | "/debug" | "" => self.servicez(),
            "/debug/pipelinez" => self.pipelinez(),
            "/debug/extensionz" => self.extensionz(),
            "/debug/graphz" => self.graphz(),
            "/debug/graphz.json" => wasmcol_core::http::response(
                http::StatusCode::OK,
                "application/json",
                self.graph_json(),
            ),
            _ => wasmcol_core::http::response(
                http::StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n",
            ),
        }
    }

    fn servicez(&self) -> Response {
        let t = self.topology();
        let mut b = String::new();
        let _ = write!(
            b,
            "<table><tr><th>Version</th><td>{}</td></tr><tr><th>Started</th><td>{}</td></tr>\
             <tr><th>Uptime</th><td>{}</td></tr><tr><th>Ready</th><td>{}</td></tr></table>\
             <p><a href=\"graphz\">Pipeline graph with live rates</a></p><h2>Components</h2>\
             <table><tr><th>Kind</th><th>Id</th></tr>",
            env!("CARGO_PKG_VERSION"),
            rfc3339(self.started),
            self.uptime(),
            self.status.is_ready(),
        );
        for (role, id) in components(&t) {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td></tr>",
                role.as_str(),
                html_escape(&id)
            );
        }
        for id in &t.extensions {
            let _ = write!(b, "<tr><td>extension</td><td>{}</td></tr>", html_escape(id));
        }
        b.push_str("</table>");
        page("Service", &b)
    }

    fn pipelinez(&self) -> Response {
        let t = self.topology();
        let list = |v: &[String]| {
            v.iter()
                .map(|s| html_escape(s))
                .collect::<Vec<_>>()
                .join(" &rarr; ")
        };
        let mut b = String::from(
            "<table><tr><th>Pipeline</th><th>Receivers</th><th>Processors</th><th>Exporters</th></tr>",
        );
        for p in &t.pipelines {
            let join = |v: &[String]| {
                v.iter()
                    .map(|s| html_escape(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(&p.id),
                join(&p.receivers),
                list(&p.processors),
                join(&p.exporters)
            );
        }
        b.push_str("</table>");
        page("Pipelines", &b)
    }

    fn extensionz(&self) -> Response {
        let t = self.topology();
        let mut b = String::from("<table><tr><th>Extension</th></tr>");
        for id in &t.extensions {
            let _ = write!(b, "<tr><td>{}</td></tr>", html_escape(id));
        }
        b.push_str("</table>");
        page("Extensions", &b)
    }

    fn graph_json(&self) -> String {
        let t = self.topology();
        let snap = stats::snapshot(&stats::parse(&self.metrics.render()));
        let rates: BTreeMap<(Role, String), Rates> = self.sampler.lock().observe(&snap);
        let components = components(&t)
            .into_iter()
            .map(|(role, id)| {
                let key = (role, id);
                let r = rates.get(&key).copied().unwrap_or_default();
                Node {
                    totals: snap.get(&key).cloned().unwrap_or_default(),
                    role: key.0,
                    id: key.1,
                    accepted_per_s: r.accepted,
                    sent_per_s: r.sent,
                }
            })
            .collect();
        let g = Graph {
            version: env!("CARGO_PKG_VERSION"),
            uptime: self.uptime(),
            ready: self.status.is_ready(),
            pipelines: t
                .pipelines
                .iter()
                .map(|p| Pipeline {
                    id: &p.id,
                    receivers: &p.receivers,
                    processors: &p.processors,
                    exporters: &p.exporters,
                })
                .collect(),
            connectors: &t.connectors,
            extensions: &t.extensions,
            components,
        };
        serde_json::to_string(&g).unwrap_or_default()
    }

    fn graphz(&self) -> Response {
        // `</` inside the inline JSON would end the script element.
        let data = self.graph_json().replace("</", "<\\/");
        let html = GRAPH_PAGE.replace("__DATA__", &data);
        wasmcol_core::http::response(http::StatusCode::OK, "text/html; charset=utf-8", html)
    }
}

/// The graph page: the first data inline, then `graphz.json` every second.
const GRAPH_PAGE: &str = include_str!("graphz.html");
