//! The inventory of config keys (issue 14): every key the registry's components, `service` and
//! the bundled plugins accept is found by probing, not listed by hand, and is either refused
//! with a "not supported" / "not implemented" error or classified in `docs/config-keys.yaml`
//! as implemented or as a hint. The result is the checked-in table `docs/config-keys.md`;
//! `WASMCOL_BLESS=1` rewrites it.
//!
//! How a key list is found: a config with the unknown key `__probe` at a map path is
//! validated, and serde's "unknown field `__probe`, expected one of `a`, `b`" names the keys
//! accepted there. A key whose value answers the same way with a map (or a list of maps) is
//! a nested struct and is walked in turn.
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};
use wasmcol_config::{ConfigError, ConfigErrors, Kind, Location};
use wasmcol_core::Metrics;

// The binary's registry, so the walk sees exactly the component types `wasmcol` has; the
// binary has no library target to import it from.
#[path = "../host/wasmcol/src/components.rs"]
mod components;

/// The unknown key whose error lists the keys accepted beside it.
const PROBE: &str = "__probe";
/// Nested structs deeper than this are not walked (no config nests this deep; a recursive
/// type would otherwise never end).
const MAX_DEPTH: usize = 8;

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The path as serde_path_to_error prints it, which is how errors name it: `a.b[0].c`.
fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path as the table shows it: list items are one row, `a.b[].c`.
fn display(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(_) => out.push_str("[]"),
        }
    }
    out
}

/// Sets `path` in `node` to `v`, making the maps and list items on the way.
fn set(node: &mut Value, path: &[Seg], v: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = v;
        return;
    };
    match first {
        Seg::Key(k) => {
            if !node.is_mapping() {
                *node = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(m) = node {
                let key = Value::String(k.clone());
                if !m.contains_key(&key) {
                    m.insert(key.clone(), Value::Null);
                }
                if let Some(child) = m.get_mut(&key) {
                    set(child, rest, v);
                }
            }
        }
        Seg::Index(i) => {
            if !node.is_sequence() {
                *node = Value::Sequence(Vec::new());
            }
            if let Value::Sequence(s) = node {
                while s.len() <= *i {
                    s.push(Value::Mapping(Mapping::new()));
                }
                set(&mut s[*i], rest, v);
            }
        }
    }
}

/// `base` with `path` set to `v`.
fn with(base: &Value, path: &[Seg], v: Value) -> Value {
    let mut out = base.clone();
    set(&mut out, path, v);
    out
}

/// How many items the list at `path` has in `base` (0 when absent or not a list).
fn items_at(base: &Value, path: &[Seg]) -> usize {
    let mut node = base;
    for seg in path {
        let next = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str()),
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return 0,
        }
    }
    node.as_sequence().map_or(0, Vec::len)
}

/// Validates one body and returns its problems, one line each, a problem inside the body as
/// `key.path: message`.
type Check<'a> = dyn Fn(&Value) -> Vec<String> + 'a;

/// The keys serde accepts at a map `path` (with `__probe` there); `None` when the value at
/// `path` is not a struct.
fn keys_at(check: &Check, base: &Value, path: &[Seg]) -> Option<Vec<String>> {
    let mut probe = path.to_vec();
    probe.push(Seg::Key(PROBE.to_owned()));
    let needle = format!("unknown field `{PROBE}`");
    let problems = check(&with(base, &probe, Value::from(1)));
    let line = problems.iter().find(|l| l.contains(&needle))?;
    let (_, rest) = line.split_once(&needle)?;
    // `expected one of `a`, `b``, `expected `a` or `b``, `there are no fields`: every other
    // backquoted word is a key.
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Values a key is set to when looking for its refusal: one of each YAML shape, so whatever
/// the key's type, one of them gets past serde to the component's own checks.
fn candidates() -> Vec<Value> {
    let parse = |s: &str| serde_yaml::from_str::<Value>(s).unwrap_or(Value::Null);
    [
        "{}",
        "true",
        "2",
        "x",
        "1s",
        "[x]",
        "{x: y}",
        "{enabled: true}",
    ]
    .into_iter()
    .map(parse)
    .collect()
}

/// Whether `line` refuses the key at `rendered`: it names the key path and says the setting
/// is not supported / not implemented.
fn refuses(line: &str, rendered: &str) -> bool {
    let at = format!("{rendered}: ");
    let start = if line.starts_with(&at) {
        Some(0)
    } else {
        line.find(&format!(" {at}")).map(|i| i + 1)
    };
    start.is_some_and(|i| {
        let tail = &line[i + at.len()..];
        tail.contains("not supported") || tail.contains("not implemented")
    })
}

/// The refusal of the key at `path` when some representative value is set there. An error
/// naming an enclosing key counts too (`tls.tpm: not supported` when `tls.tpm.enabled` is
/// set): nothing else was changed.
fn refusal(check: &Check, base: &Value, path: &[Seg]) -> Option<String> {
    let named: Vec<String> = (1..=path.len()).rev().map(|n| render(&path[..n])).collect();
    candidates().into_iter().find_map(|v| {
        let doc = with(base, path, v);
        let mut problems = check(&doc);
        // A key that needs a sibling (`auth.request_params` beside `auth.authenticator`)
        // is tried again with the sibling given.
        let missing = problems.iter().find_map(|l| {
            let (_, rest) = l.split_once("missing field `")?;
            rest.split('`').next().map(str::to_owned)
        });
        if let Some(field) = missing {
            let mut sibling = path[..path.len() - 1].to_vec();
            sibling.push(Seg::Key(field));
            problems.extend(check(&with(&doc, &sibling, Value::from("x"))));
        }
        named.iter().find_map(|rendered| {
            let line = problems.iter().find(|l| refuses(l, rendered))?;
            let i = line.find(&format!("{rendered}: ")).unwrap_or(0);
            Some(line[i + rendered.len() + 2..].to_owned())
        })
    })
}

/// One accepted key: its table path and, when refused, the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Walked {
    path: String,
    refused: Option<String>,
}

/// What a walk of one body works with.
struct Walker<'a> {
    check: &'a Check<'a>,
    base: &'a Value,
    /// Keys whose value is handed on unread by the host (the `wasm` processor's `config`
    /// goes to whatever plugin `path` names): walked no further.
    opaque: &'a [&'a str],
}

impl Walker<'_> {
    /// Every accepted key under the struct at `path`, depth first.
    fn walk(&self, path: &[Seg], out: &mut Vec<Walked>) -> Result<(), String> {
        let keys = keys_at(self.check, self.base, path)
            .ok_or_else(|| format!("no key list at `{}`", render(path)))?;
        for key in keys {
            let mut kp = path.to_vec();
            kp.push(Seg::Key(key));
            self.walk_key(&kp, out)?;
        }
        Ok(())
    }

    /// One key: refused as a whole, a nested struct, a list of structs, or a leaf.
    fn walk_key(&self, kp: &[Seg], out: &mut Vec<Walked>) -> Result<(), String> {
        let (check, base) = (self.check, self.base);
        if let Some(msg) = refusal(check, base, kp) {
            out.push(Walked {
                path: display(kp),
                refused: Some(msg),
            });
            return Ok(());
        }
        if kp.len() < MAX_DEPTH && !self.opaque.contains(&display(kp).as_str()) {
            if keys_at(check, base, kp).is_some_and(|k| !k.is_empty()) {
                return self.walk(kp, out);
            }
            let mut first = kp.to_vec();
            first.push(Seg::Index(0));
            if keys_at(check, base, &first).is_some_and(|k| !k.is_empty()) {
                // Every item the base config has is walked: items of one list can differ (a
                // reader is `pull` or `periodic`), and each is checked in its own context.
                for i in 0..items_at(base, kp).max(1) {
                    let mut item = kp.to_vec();
                    item.push(Seg::Index(i));
                    self.walk(&item, out)?;
                }
                return Ok(());
            }
        }
        out.push(Walked {
            path: display(kp),
            refused: None,
        });
        Ok(())
    }
}

/// Every accepted key of one body, each table path once (a key refused in any list item is
/// refused).
fn inventory(check: &Check, base: &Value, opaque: &[&str]) -> Result<Vec<Walked>, String> {
    let problems = check(base);
    if !problems.is_empty() {
        return Err(format!(
            "the base config is not valid: {}",
            problems.join("; ")
        ));
    }
    let mut walked = Vec::new();
    Walker {
        check,
        base,
        opaque,
    }
    .walk(&[], &mut walked)?;
    let mut by_path: BTreeMap<String, Option<String>> = BTreeMap::new();
    for w in walked {
        let slot = by_path.entry(w.path).or_default();
        if slot.is_none() {
            *slot = w.refused;
        }
    }
    Ok(by_path
        .into_iter()
        .map(|(path, refused)| Walked { path, refused })
        .collect())
}

/// What the checked-in classification says of one component's accepted, unrefused keys.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Classes {
    /// Keys wasmcol applies.
    #[serde(default)]
    implemented: BTreeSet<String>,
    /// Keys upstream itself treats as hints, with the reason.
    #[serde(default)]
    hint: BTreeMap<String, String>,
}

/// A key's status in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Implemented,
    Refused,
    Hint,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Refused => "refused",
            Status::Hint => "hint",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    path: String,
    status: Status,
    note: String,
}

/// The rows of one component, and every key that is accepted but neither refused nor
/// classified, or classified but no longer accepted or now refused.
fn classify(component: &str, walked: &[Walked], classes: &Classes) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for w in walked {
        seen.insert(w.path.as_str());
        let classified =
            classes.implemented.contains(&w.path) || classes.hint.contains_key(&w.path);
        let (status, note) = match (&w.refused, classes.hint.get(&w.path)) {
            (Some(msg), _) => {
                if classified {
                    problems.push(format!(
                        "{component}: `{}` is refused ({msg}); remove it from docs/config-keys.yaml",
                        w.path
                    ));
                }
                (Status::Refused, msg.clone())
            }
            (None, Some(reason)) => (Status::Hint, reason.clone()),
            (None, None) if classes.implemented.contains(&w.path) => {
                (Status::Implemented, String::new())
            }
            (None, None) => {
                problems.push(format!(
                    "{component}: `{}` is accepted but neither refused nor classified: apply it \
                     and list it under `implemented` in docs/config-keys.yaml, list it under \
                     `hint` with the reason upstream treats it as a hint, or refuse it with a \
                     \"not supported by wasmcol\" error naming its path",
                    w.path
                ));
                continue;
            }
        };
        rows.push(Row {
            path: w.path.clone(),
            status,
            note,
        });
    }
    let listed = classes.implemented.iter().chain(classes.hint.keys());
    for stale in listed.filter(|k| !seen.contains(k.as_str())) {
        problems.push(format!(
            "{component}: `{stale}` is in docs/config-keys.yaml but no longer accepted; remove it"
        ));
    }
    (rows, problems)
}

/// A table cell: one line, no column separator.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The markdown table of every component.
fn table(sections: &[(String, Vec<Row>)]) -> String {
    let keys: usize = sections.iter().map(|(_, r)| r.len()).sum();
    let mut out = format!(
        "# Config keys\n\n\
         Generated by `tests/config_keys.rs`; do not edit. Rewrite it with\n\
         `WASMCOL_BLESS=1 cargo test -p wasmcol --test config_keys`.\n\n\
         Every key that `service` and each component type of `wasmcol components` accepts, \
         {} sections and {keys} keys:\n\n\
         - **implemented**: applied; listed in `docs/config-keys.yaml`.\n\
         - **refused**: `validate` and start fail with the note when it is set (to a \
         representative value; some keys are refused only for some values, see README.md).\n\
         - **hint**: accepted with no effect on the outcome: upstream treats it as a hint, or \
         it tunes something wasmcol does not have; the note says why.\n\n\
         No key is accepted and ignored: the test fails on a key that is neither refused nor \
         classified.\n",
        sections.len()
    );
    for (name, rows) in sections {
        out.push_str(&format!(
            "\n## {name}\n\n| key | status | note |\n|---|---|---|\n"
        ));
        if rows.is_empty() {
            out.push_str("| (no keys) | | |\n");
        }
        for r in rows {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                r.path,
                r.status.as_str(),
                cell(&r.note)
            ));
        }
    }
    out
}

// ---- The real registry ----

/// The problems of `errors`: those in the component `ours` relative to its body, the others
/// with where they are.
fn lines(errors: &ConfigErrors, ours: &Location) -> Vec<String> {
    errors
        .0
        .iter()
        .map(
            |e: &ConfigError| match (&e.location == ours, e.path.is_empty()) {
                (true, true) => e.message.clone(),
                (true, false) => format!("{}: {}", e.path, e.message),
                (false, _) => e.to_string(),
            },
        )
        .collect()
}

/// Loads, builds and prepares `doc` as `wasmcol validate` does, and returns every problem.
fn validate(doc: &Value, ctx: &Ctx) -> ConfigErrors {
    let yaml = serde_yaml::to_string(doc).unwrap_or_default();
    let cfg = match wasmcol_config::load_str(&yaml, &|_| None) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let built = {
        let _guard = ctx.rt.enter();
        wasmcol_core::build(&cfg, &ctx.registry, &Metrics::new())
    };
    match built {
        Ok(service) => match ctx.rt.block_on(service.prepare()) {
            Ok(()) => ConfigErrors::default(),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// What every check shares: the registry, and the runtime building and preparing runs on.
struct Ctx {
    rt: tokio::runtime::Runtime,
    registry: wasmcol_core::Registry,
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

/// A whole config around `body` of component `name` of `kind`: a traces pipeline from an
/// `otlp` receiver to a `nop` exporter that uses it.
fn config_around(kind: Kind, name: &str, body: &Value) -> Value {
    let mut doc = yaml(
        "receivers: {otlp: {protocols: {grpc: {endpoint: '127.0.0.1:0'}}}}\n\
         exporters: {nop: }\n\
         service: {pipelines: {traces: {receivers: [otlp], exporters: [nop]}}}",
    );
    if kind == Kind::Receiver {
        // The receiver under test is the pipeline's only one.
        set(&mut doc, &[Seg::Key("receivers".into())], Value::Null);
    }
    let section = kind.section();
    set(
        &mut doc,
        &[Seg::Key(section.into()), Seg::Key(name.into())],
        body.clone(),
    );
    let traces = |k: &str| {
        vec![
            Seg::Key("service".into()),
            Seg::Key("pipelines".into()),
            Seg::Key("traces".into()),
            Seg::Key(k.into()),
        ]
    };
    let list = Value::Sequence(vec![Value::from(name)]);
    match kind {
        Kind::Receiver => set(&mut doc, &traces("receivers"), list),
        Kind::Processor => set(&mut doc, &traces("processors"), list),
        Kind::Exporter => set(&mut doc, &traces("exporters"), list),
        Kind::Extension => set(
            &mut doc,
            &[Seg::Key("service".into()), Seg::Key("extensions".into())],
            list,
        ),
        Kind::Connector => {
            set(&mut doc, &traces("exporters"), list.clone());
            let mut out = yaml("{receivers: [], exporters: [nop]}");
            set(&mut out, &[Seg::Key("receivers".into())], list);
            set(
                &mut doc,
                &[
                    Seg::Key("service".into()),
                    Seg::Key("pipelines".into()),
                    Seg::Key("traces/out".into()),
                ],
                out,
            );
        }
    }
    doc
}

/// A minimal valid body of each component type whose defaults are not valid alone; every
/// other type starts from an empty body. The test fails when a registered type's base is
/// not valid, so a new type that needs one is noticed.
fn bases(storage: &std::path::Path) -> BTreeMap<(Kind, String), Value> {
    let template = wasmcol_wasm::bundled::test_paths::TEMPLATE;
    let storage = storage.display();
    [
        (Kind::Receiver, "otlp", "protocols: {grpc: {endpoint: '127.0.0.1:0'}, http: {endpoint: '127.0.0.1:0'}}".to_owned()),
        (Kind::Processor, "memory_limiter", "{check_interval: 1s, limit_mib: 100}".to_owned()),
        (Kind::Processor, "attributes", "actions: [{key: a, action: upsert, value: b}]".to_owned()),
        (Kind::Processor, "resource", "attributes: [{key: a, action: upsert, value: b}]".to_owned()),
        (Kind::Processor, "probabilistic_sampler", "sampling_percentage: 50".to_owned()),
        (Kind::Processor, "tail_sampling", "policies: [{name: p, type: always_sample}]".to_owned()),
        (Kind::Processor, "wasm", format!("{{path: '{template}', config: {{key: k}}}}")),
        (Kind::Exporter, "otlp_grpc", "{endpoint: '127.0.0.1:4317', tls: {insecure: true}}".to_owned()),
        (Kind::Exporter, "otlp_http", "endpoint: 'http://127.0.0.1:4318'".to_owned()),
        (Kind::Exporter, "load_balancing", "{protocol: {otlp: {tls: {insecure: true}}}, resolver: {static: {hostnames: ['127.0.0.1:4317']}}}".to_owned()),
        (Kind::Connector, "failover", "priority_levels: [[traces/out]]".to_owned()),
        (Kind::Extension, "file_storage", format!("directory: '{storage}'")),
        (Kind::Extension, "bearertokenauth", "token: t".to_owned()),
        (Kind::Extension, "basicauth", "htpasswd: {inline: 'u:$2y$05$Zh9HnmjYRPz0Fu5XqyeOBe8sE5EXHeZ3yQYw2NJD0HLFGbnuqwfDW'}".to_owned()),
        (Kind::Extension, "headers_setter", "headers: [{key: X-Tenant, value: t}]".to_owned()),
        (Kind::Extension, "health_check", "endpoint: '127.0.0.1:0'".to_owned()),
        (Kind::Extension, "zpages", "endpoint: '127.0.0.1:0'".to_owned()),
    ]
    .into_iter()
    .map(|(k, n, body)| ((k, n.to_owned()), yaml(&body)))
    .collect()
}

/// The `service` section's base: a pipeline, one metric reader of each kind and one log
/// processor of each kind.
fn service_base() -> Value {
    yaml(
        "pipelines: {traces: {receivers: [otlp], exporters: [nop]}}\n\
         telemetry:\n  metrics:\n    readers:\n\
         \x20     - pull: {exporter: {prometheus: {host: 127.0.0.1, port: 0}}}\n\
         \x20     - periodic: {exporter: {otlp: {protocol: grpc, endpoint: 'http://127.0.0.1:4317'}}}\n\
         \x20 logs:\n    processors:\n\
         \x20     - batch: {exporter: {otlp: {protocol: grpc, endpoint: 'http://127.0.0.1:4317'}}}\n\
         \x20     - simple: {exporter: {otlp: {protocol: grpc, endpoint: 'http://127.0.0.1:4317'}}}\n",
    )
}

/// The table's sections so far and the problems found.
#[derive(Default)]
struct Found {
    sections: Vec<(String, Vec<Row>)>,
    problems: Vec<String>,
}

impl Found {
    /// Walks one body and classifies its keys.
    fn add(
        &mut self,
        name: String,
        check: &Check,
        base: &Value,
        classes: &BTreeMap<String, Classes>,
    ) {
        let empty = Classes::default();
        let opaque: &[&str] = if name == "processors::wasm" {
            &["config"]
        } else {
            &[]
        };
        let walked = inventory(check, base, opaque).unwrap_or_else(|e| {
            self.problems.push(format!("{name}: {e}"));
            Vec::new()
        });
        let (rows, p) = classify(&name, &walked, classes.get(&name).unwrap_or(&empty));
        self.problems.extend(p);
        self.sections.push((name, rows));
    }
}

/// Walks `service` and every registered component type.
fn inventory_of_everything(classes: &BTreeMap<String, Classes>) -> Found {
    let dir = tempfile::tempdir().unwrap();
    let plugins =
        Arc::new(wasmcol_wasm::Runtime::new(wasmcol_wasm::RuntimeOptions::default()).unwrap());
    let ctx = Ctx {
        rt: tokio::runtime::Runtime::new().unwrap(),
        registry: components::registry(plugins),
    };
    let bases = bases(dir.path());
    let mut found = Found::default();
    let service_loc = Location::Other("service".into());
    let service_check = |body: &Value| {
        let mut doc = config_around(Kind::Exporter, "nop", &Value::Null);
        set(&mut doc, &[Seg::Key("service".into())], body.clone());
        lines(&validate(&doc, &ctx), &service_loc)
    };
    found.add("service".into(), &service_check, &service_base(), classes);
    for entry in ctx.registry.entries() {
        let (kind, name) = (entry.kind, entry.name.as_str());
        let ours = Location::Component(kind, name.parse().unwrap());
        let check = |body: &Value| lines(&validate(&config_around(kind, name, body), &ctx), &ours);
        let base = bases
            .get(&(kind, name.to_owned()))
            .cloned()
            .unwrap_or(Value::Null);
        found.add(
            format!("{}::{name}", kind.section()),
            &check,
            &base,
            classes,
        );
    }
    let known: BTreeSet<&str> = found.sections.iter().map(|(n, _)| n.as_str()).collect();
    let stale: Vec<String> = classes
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .map(|k| format!("docs/config-keys.yaml: `{k}` is no component; remove it"))
        .collect();
    found.problems.extend(stale);
    found
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Every accepted key is refused or classified, and the table is the checked-in one.
#[test]
fn every_accepted_key_is_refused_or_classified() {
    let text = std::fs::read_to_string(repo_file("docs/config-keys.yaml")).unwrap();
    let classes: BTreeMap<String, Classes> = serde_yaml::from_str(&text).unwrap();
    let Found { sections, problems } = inventory_of_everything(&classes);
    let fresh = table(&sections);
    let path = repo_file("docs/config-keys.md");
    if std::env::var_os("WASMCOL_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let out = std::env::temp_dir().join("wasmcol-config-keys.md");
        std::fs::write(&out, &fresh).unwrap();
        eprintln!("freshly generated: {}", out.display());
    }
    assert!(
        committed == fresh,
        "docs/config-keys.md is stale: regenerate it with \
         `WASMCOL_BLESS=1 cargo test -p wasmcol --test config_keys`"
    );
}

// ---- The checker on a made-up component ----

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FakeItem {
    name: String,
    weight: Option<u32>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FakeTls {
    insecure: Option<bool>,
    tpm: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Fake {
    endpoint: Option<String>,
    tls: Option<FakeTls>,
    items: Option<Vec<FakeItem>>,
    buffer_size: Option<u32>,
}

/// `Fake` with one key more, as if a field were added to a config struct.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FakeWithNewKey {
    endpoint: Option<String>,
    tls: Option<FakeTls>,
    items: Option<Vec<FakeItem>>,
    buffer_size: Option<u32>,
    colour: Option<String>,
}

/// A component that refuses `tls.tpm` the way real ones do.
fn fake_check<T: serde::de::DeserializeOwned>(body: &Value) -> Vec<String> {
    if let Err(e) = wasmcol_config::decode::<T>(body) {
        return vec![e.to_string()];
    }
    match body.get("tls").and_then(|t| t.get("tpm")) {
        Some(_) => vec!["tls.tpm: not supported by wasmcol".to_owned()],
        None => Vec::new(),
    }
}

fn fake_classes() -> Classes {
    serde_yaml::from_str(
        "implemented: [endpoint, tls.insecure, 'items[].name', 'items[].weight']\n\
         hint: {buffer_size: tunes Go's socket buffers}",
    )
    .unwrap()
}

#[test]
fn the_walk_finds_nested_and_listed_keys_and_refusals() {
    let walked = inventory(&fake_check::<Fake>, &Value::Null, &[]).unwrap();
    let (rows, problems) = classify("receivers::fake", &walked, &fake_classes());
    assert!(problems.is_empty(), "{problems:?}");
    let got: Vec<(&str, Status)> = rows.iter().map(|r| (r.path.as_str(), r.status)).collect();
    assert_eq!(
        got,
        [
            ("buffer_size", Status::Hint),
            ("endpoint", Status::Implemented),
            ("items[].name", Status::Implemented),
            ("items[].weight", Status::Implemented),
            ("tls.insecure", Status::Implemented),
            ("tls.tpm", Status::Refused),
        ]
    );
    assert_eq!(rows[5].note, "not supported by wasmcol");
}

#[test]
fn a_new_accepted_but_unclassified_key_fails_naming_component_and_path() {
    let walked = inventory(&fake_check::<FakeWithNewKey>, &Value::Null, &[]).unwrap();
    let (_, problems) = classify("receivers::fake", &walked, &fake_classes());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "receivers::fake: `colour` is accepted but neither refused nor classified"
        ),
        "{}",
        problems[0]
    );
}

#[test]
fn a_classified_key_that_is_gone_or_refused_fails() {
    let mut classes = fake_classes();
    classes.implemented.insert("tls.tpm".into());
    classes.implemented.insert("removed".into());
    let walked = inventory(&fake_check::<Fake>, &Value::Null, &[]).unwrap();
    let (_, problems) = classify("receivers::fake", &walked, &classes);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("`tls.tpm` is refused"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains("`removed` is in docs/config-keys.yaml but no longer accepted"),
        "{}",
        problems[1]
    );
}

#[test]
fn an_invalid_base_config_is_reported() {
    let e = inventory(&fake_check::<Fake>, &yaml("endpoint: [1]"), &[]).unwrap_err();
    assert!(
        e.starts_with("the base config is not valid: endpoint: invalid type"),
        "{e}"
    );
}
