//! `wasmcol plugin new`: writes a ready plugin project that builds outside this repository.
//!
//! The SDK is not on crates.io, so the binary carries the SDK crate's packaged sources
//! (embedded at build time by `build.rs`) and writes them to `vendor/wasmcol-sdk`; the
//! project depends on that copy by path with an exact version, so it builds offline (apart
//! from the SDK's own crates.io dependencies) and upgrading is replacing one directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The SDK crate's files (path relative to the crate, contents), its manifest made standalone.
const SDK_FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// Where the SDK copy goes inside a new project.
const SDK_DIR: &str = "vendor/wasmcol-sdk";

/// Names cargo refuses for a package, or that would clash with the project's dependencies.
const RESERVED: &[&str] = &[
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "serde",
    "wasmcol_sdk",
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// Checks `name` is usable as the package (and so the library) name: ASCII letters, digits,
/// `-` and `_`, starting with a letter, not a keyword or a name that clashes.
pub fn check_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "must not be empty"
    } else if name.len() > 64 {
        "must be at most 64 characters"
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        "must start with an ASCII letter"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        "may only contain ASCII letters, digits, `-` and `_`"
    } else if RESERVED.contains(&lib_name(name).as_str()) {
        "is reserved (a Rust keyword, a standard crate or a dependency of the project)"
    } else {
        return Ok(());
    };
    Err(format!("invalid plugin name {name:?}: {why}"))
}

/// The library (and `.wasm` file) name cargo derives from a package name.
fn lib_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The SDK version the embedded sources declare.
fn sdk_version() -> &'static str {
    SDK_FILES
        .iter()
        .find(|(path, _)| *path == "Cargo.toml")
        .and_then(|(_, manifest)| {
            manifest
                .lines()
                .find_map(|l| l.trim().strip_prefix("version = "))
        })
        .map(|v| v.trim_matches('"'))
        .unwrap_or("0.0.0")
}

/// Writes a project for plugin `name` into `dir` (default `./<name>`); returns the directory.
pub fn create(name: &str, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if let Ok(mut entries) = std::fs::read_dir(&dir) {
        if entries.next().is_some() {
            anyhow::bail!(
                "{} exists and is not empty: choose another --dir",
                dir.display()
            );
        }
    } else if dir.exists() {
        anyhow::bail!("{} exists and is not a directory", dir.display());
    }
    for (path, contents) in files(name) {
        write(&dir.join(path), &contents)?;
    }
    for (path, contents) in SDK_FILES {
        write(&dir.join(SDK_DIR).join(path), contents)?;
    }
    Ok(dir)
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// What to do next, printed after the project is written.
pub fn next_steps(name: &str, dir: &Path) -> String {
    let lib = lib_name(name);
    format!(
        "Created plugin project {name} in {dir}\n\
         \n  cd {dir}\
         \n  cargo test\
         \n  cargo build --target wasm32-wasip2 --release\
         \n  wasmcol plugin run target/wasm32-wasip2/release/{lib}.wasm --input batch.json \\\
         \n      --plugin-config '{{key: team, value: payments}}'\
         \n  wasmcol --config collector.yaml\n",
        dir = dir.display()
    )
}

/// The project's own files (relative path, contents).
fn files(name: &str) -> Vec<(&'static str, String)> {
    let lib = lib_name(name);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{sdk_version}}", sdk_version())
            .replace("{{sdk_dir}}", SDK_DIR)
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", lib_rs(name)),
        ("batch.json", BATCH_JSON.to_owned()),
        ("collector.yaml", fill(COLLECTOR_YAML)),
        ("README.md", fill(README_MD)),
        (".gitignore", "/target\n".to_owned()),
    ]
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
description = "A wasmcol processor plugin."
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the component; rlib: lets `cargo test` link the unit tests natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The SDK is not on crates.io: `wasmcol plugin new` wrote its sources to {{sdk_dir}}.
# To upgrade, replace that directory with a newer copy and bump the version here.
wasmcol-sdk = { version = "={{sdk_version}}", path = "{{sdk_dir}}" }
serde = { version = "1", features = ["derive"] }

[profile.release]
# Panics become traps either way; abort keeps the component small.
panic = "abort"
strip = true

# A workspace of its own, so the project builds wherever it is placed.
[workspace]
"#;

/// The plugin template (`plugins/template`, built and tested with the bundled plugins): one
/// source for the template and every new project's `src/lib.rs`.
const TEMPLATE_LIB_RS: &str = include_str!("../../../plugins/template/src/lib.rs");

/// The template's lines that only the template needs: its name is fixed because its package
/// is `wasmcol-plugin-template`, while a new plugin is named after its own package.
const TEMPLATE_NAME_LINES: &str = "    // `wasmcol plugin new` drops these two lines: a new plugin is named after its package.\n    const NAME: &'static str = \"template\";\n";

/// A new project's `src/lib.rs`: the template, named after the project.
fn lib_rs(name: &str) -> String {
    TEMPLATE_LIB_RS
        .replacen(TEMPLATE_NAME_LINES, "", 1)
        .replace("Template", "Plugin")
        .replace("\"template\"", &format!("{name:?}"))
}

const BATCH_JSON: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "checkout" } }
        ]
      },
      "scopeSpans": [
        {
          "scope": { "name": "example" },
          "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b174",
              "name": "GET /cart",
              "kind": 2,
              "startTimeUnixNano": "1700000000000000000",
              "endTimeUnixNano": "1700000000250000000"
            },
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b175",
              "parentSpanId": "eee19b7ec3c1b174",
              "name": "SELECT cart",
              "kind": 3,
              "startTimeUnixNano": "1700000000010000000",
              "endTimeUnixNano": "1700000000200000000",
              "attributes": [
                { "key": "team", "value": { "stringValue": "storage" } }
              ]
            }
          ]
        }
      ]
    }
  ]
}
"#;

const COLLECTOR_YAML: &str = r#"# Runs the plugin in a collector: `wasmcol --config collector.yaml` after the wasm build.
# Loopback only, on ports that do not clash with a collector on the default ones.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:24317
      http:
        endpoint: 127.0.0.1:24318

processors:
  # The key is `wasm/<id>`; the id is yours to choose. A relative `path:` is relative to this
  # file's directory.
  wasm/{{lib}}:
    path: target/wasm32-wasip2/release/{{lib}}.wasm
    config:
      key: team
      value: payments

exporters:
  debug:
    verbosity: detailed

service:
  telemetry:
    metrics:
      address: 127.0.0.1:28888
  pipelines:
    traces:
      receivers: [otlp]
      processors: [wasm/{{lib}}]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      processors: [wasm/{{lib}}]
      exporters: [debug]
    logs:
      receivers: [otlp]
      processors: [wasm/{{lib}}]
      exporters: [debug]
"#;

const README_MD: &str = r#"# {{name}}

A wasmcol processor plugin, created by `wasmcol plugin new`. `src/lib.rs` sets a configured
attribute on every span, data point and log record that lacks it; change it to your needs.

```sh
cargo test                                      # unit tests, natively (wasmcol_sdk::testing)
cargo build --target wasm32-wasip2 --release    # the component
wasmcol plugin inspect target/wasm32-wasip2/release/{{lib}}.wasm
wasmcol plugin run target/wasm32-wasip2/release/{{lib}}.wasm --input batch.json \
    --plugin-config '{key: team, value: payments}'
wasmcol --config collector.yaml                 # OTLP on 127.0.0.1:24317 (gRPC) / 24318 (HTTP)
```

The wasm build needs the target once: `rustup target add wasm32-wasip2`.

- `batch.json` is an OTLP/JSON trace export request to try the plugin on.
- `collector.yaml` runs it as processor `wasm/{{lib}}` in all three pipelines and prints what
  passes with the `debug` exporter.
- `{{sdk_dir}}` is the wasmcol SDK {{sdk_version}} (not published on crates.io); its
  README documents the API.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cargo_refuses_are_refused() {
        for ok in ["redact", "my-plugin", "region_tagger2"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "must not be empty"),
            ("2fast", "must start with an ASCII letter"),
            ("-x", "must start with an ASCII letter"),
            ("my plugin", "may only contain"),
            ("café", "may only contain"),
            ("fn", "reserved"),
            ("test", "reserved"),
            ("wasmcol-sdk", "reserved"),
            ("serde", "reserved"),
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    /// The template's fixed name must not reach a new project (its name comes from Cargo), and
    /// nothing else of the template may name it.
    #[test]
    fn a_new_lib_rs_is_the_template_named_after_the_project() {
        assert!(TEMPLATE_LIB_RS.contains(TEMPLATE_NAME_LINES));
        let lib = lib_rs("region-tag");
        assert!(!lib.contains("const NAME"), "{lib}");
        assert!(!lib.to_lowercase().contains("\"template\""), "{lib}");
        assert!(!lib.contains("Template"), "{lib}");
        assert!(
            lib.contains("wasmcol_sdk::export_processor!(Plugin);"),
            "{lib}"
        );
        assert!(lib.contains("\"region-tag\".into()"), "{lib}");
    }

    #[test]
    fn the_embedded_sdk_is_the_packaged_crate() {
        let paths: Vec<&str> = SDK_FILES.iter().map(|(p, _)| *p).collect();
        for want in [
            "Cargo.toml",
            "README.md",
            "src/lib.rs",
            "src/bindings/processor.rs",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert!(paths.iter().any(|p| p.starts_with("wit/")), "{paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("tests/")), "{paths:?}");
        let manifest = SDK_FILES
            .iter()
            .find(|(p, _)| *p == "Cargo.toml")
            .map(|(_, m)| *m)
            .unwrap();
        // Standalone: nothing to inherit from a workspace, no dev-dependencies.
        assert!(!manifest.contains("workspace = true"), "{manifest}");
        assert!(!manifest.contains("[dev-dependencies]"), "{manifest}");
        assert!(manifest.contains("name = \"wasmcol-sdk\""), "{manifest}");
        assert_eq!(sdk_version(), "0.1.0");
    }

    #[test]
    fn refuses_a_non_empty_dir_and_fills_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), "x").unwrap();
        let e = create("p", Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep")).unwrap(),
            "x"
        );

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let out = create("my-plugin", Some(&empty)).unwrap();
        let cargo = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my-plugin\""), "{cargo}");
        assert!(cargo.contains(r#"version = "=0.1.0", path = "vendor/wasmcol-sdk""#));
        let yaml = std::fs::read_to_string(out.join("collector.yaml")).unwrap();
        assert!(yaml.contains("wasm/my_plugin:"), "{yaml}");
        assert!(yaml.contains("release/my_plugin.wasm"), "{yaml}");
        assert!(out.join("vendor/wasmcol-sdk/src/lib.rs").is_file());
        assert!(!yaml.contains("{{") && !cargo.contains("{{"));
    }
}
