//! A structural check of the Kubernetes manifests in `deploy/k8s` (no cluster here): every
//! document parses and has what the API server and the controllers need (names, selectors
//! that match their pod templates, mounts of declared volumes, probes on declared ports,
//! Services selecting a workload and targeting its ports, the StatefulSet's governing
//! headless Service, a queue volume per replica, non-root pods); the kustomization lists
//! exactly the manifests; every collector config embedded in a ConfigMap passes
//! `wasmcol validate` with the environment its pod gives it; and the PrometheusRule's alerts
//! pass `promtool check rules` and `promtool test rules` (deploy/k8s/alerts.test.yaml).
//! Without promtool that last part is skipped with a message, unless
//! `WASMCOL_REQUIRE_PROMTOOL=1` (set by `.ci/run`, which installs it).
// Test code: a failed expectation is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_yaml::Value;
use wasmcol_testkit::promtool;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s")
}

/// Every document of every manifest (`*.yaml` but the kustomization and the promtool test),
/// with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name == "kustomization.yaml" || name == "alerts.test.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !v.is_null() {
                out.push((name.clone(), v));
            }
        }
    }
    out
}

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing string {path} in {v:?}"))
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("missing list {path} in {v:?}"))
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        v.as_str()
                            .unwrap_or_else(|| panic!("label {k:?} not a string"))
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kind(v: &Value) -> &str {
    str_at(v, "kind")
}

fn name(v: &Value) -> &str {
    str_at(v, "metadata.name")
}

/// The checks of one Deployment or StatefulSet.
fn check_workload(w: &Value, config_maps: &BTreeSet<String>, services: &[Value]) {
    let id = format!("{} {}", kind(w), name(w));
    let selector = labels(get(w, "spec.selector.matchLabels"));
    let template = labels(get(w, "spec.template.metadata.labels"));
    assert!(!selector.is_empty(), "{id}: empty selector");
    assert!(
        selector.iter().all(|(k, v)| template.get(k) == Some(v)),
        "{id}: selector {selector:?} does not match the template's labels {template:?}"
    );
    let pod = get(w, "spec.template.spec").unwrap();
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool),
        Some(true),
        "{id}"
    );
    assert_eq!(
        get(pod, "securityContext.runAsUser").and_then(Value::as_u64),
        Some(10001),
        "{id}"
    );
    let mut volumes: BTreeSet<String> = BTreeSet::new();
    for v in seq_at(pod, "volumes") {
        volumes.insert(str_at(v, "name").to_string());
        if let Some(cm) = get(v, "configMap.name").and_then(Value::as_str) {
            assert!(
                config_maps.contains(cm),
                "{id}: ConfigMap {cm} is not defined"
            );
        }
    }
    let claims: BTreeSet<String> = get(w, "spec.volumeClaimTemplates")
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .map(|c| str_at(c, "metadata.name").to_string())
                .collect()
        })
        .unwrap_or_default();
    let containers = seq_at(pod, "containers");
    assert!(!containers.is_empty(), "{id}: no containers");
    for c in containers {
        str_at(c, "name");
        str_at(c, "image");
        let ports: BTreeSet<&str> = seq_at(c, "ports")
            .iter()
            .map(|p| {
                get(p, "containerPort").and_then(Value::as_u64).unwrap();
                str_at(p, "name")
            })
            .collect();
        for probe in ["readinessProbe", "livenessProbe"] {
            let port = get(c, &format!("{probe}.httpGet.port"))
                .unwrap_or_else(|| panic!("{id}: no {probe}"));
            if let Some(p) = port.as_str() {
                assert!(ports.contains(p), "{id}: {probe} on undeclared port {p}");
            }
        }
        let mut mounted = BTreeMap::new();
        for m in seq_at(c, "volumeMounts") {
            let (n, path) = (str_at(m, "name"), str_at(m, "mountPath"));
            assert!(
                volumes.contains(n) || claims.contains(n),
                "{id}: mount of undeclared volume {n}"
            );
            mounted.insert(path.to_string(), n.to_string());
        }
        // The image's writable paths are volumes (the root filesystem is read-only).
        assert!(
            mounted.contains_key("/var/cache/wasmcol"),
            "{id}: no plugin cache volume"
        );
        assert!(
            mounted.contains_key("/etc/wasmcol"),
            "{id}: no config volume"
        );
        if kind(w) == "StatefulSet" {
            let q = mounted
                .get("/var/otel/queue")
                .unwrap_or_else(|| panic!("{id}: no queue mount"));
            assert!(
                claims.contains(q),
                "{id}: the queue is not a per-replica claim"
            );
        }
        // Every Service selecting this workload targets ports it declares.
        for s in services.iter().filter(|s| {
            let sel = labels(get(s, "spec.selector"));
            !sel.is_empty() && sel.iter().all(|(k, v)| template.get(k) == Some(v))
        }) {
            for p in seq_at(s, "spec.ports") {
                if let Some(t) = get(p, "targetPort").and_then(Value::as_str) {
                    assert!(
                        ports.contains(t),
                        "Service {}: targetPort {t} not on {id}",
                        name(s)
                    );
                }
            }
        }
    }
    if kind(w) == "StatefulSet" {
        let governing = str_at(w, "spec.serviceName");
        let s = services
            .iter()
            .find(|s| name(s) == governing)
            .unwrap_or_else(|| panic!("{id}: Service {governing} is not defined"));
        assert_eq!(
            str_at(s, "spec.clusterIP"),
            "None",
            "{id}: {governing} is not headless"
        );
    }
}

#[test]
fn manifests_have_what_a_cluster_needs() {
    let docs = manifests();
    let by_kind = |k: &str| -> Vec<Value> {
        docs.iter()
            .filter(|(_, d)| kind(d) == k)
            .map(|(_, d)| d.clone())
            .collect()
    };
    for (file, d) in &docs {
        str_at(d, "apiVersion");
        assert!(!name(d).is_empty(), "{file}: unnamed {}", kind(d));
        assert!(
            [
                "ConfigMap",
                "Deployment",
                "StatefulSet",
                "Service",
                "PrometheusRule"
            ]
            .contains(&kind(d)),
            "{file}: unexpected kind {}",
            kind(d)
        );
    }
    let config_maps: BTreeSet<String> = by_kind("ConfigMap")
        .iter()
        .map(|c| name(c).to_string())
        .collect();
    let services = by_kind("Service");
    let workloads: Vec<Value> = [by_kind("Deployment"), by_kind("StatefulSet")].concat();
    for w in &workloads {
        check_workload(w, &config_maps, &services);
    }
    // Every tier is there: region collectors as a StatefulSet, gateways, and a load-balancing
    // tier resolving a headless Service.
    assert_eq!(by_kind("StatefulSet").len(), 1);
    assert!(workloads.iter().any(|w| name(w) == "wasmcol-gateway"));
    assert!(workloads.iter().any(|w| name(w) == "wasmcol-lb"));
    assert!(
        services
            .iter()
            .filter(|s| get(s, "spec.clusterIP").and_then(Value::as_str) == Some("None"))
            .count()
            >= 1
    );
    for s in &services {
        let sel = labels(get(s, "spec.selector"));
        assert!(
            workloads.iter().any(|w| {
                let t = labels(get(w, "spec.template.metadata.labels"));
                sel.iter().all(|(k, v)| t.get(k) == Some(v))
            }),
            "Service {} selects no workload",
            name(s)
        );
    }

    // The kustomization lists exactly the manifests.
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(k8s_dir().join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(str_at(&k, "kind"), "Kustomization");
    let listed: BTreeSet<String> = seq_at(&k, "resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let files: BTreeSet<String> = docs.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(listed, files, "kustomization resources vs manifest files");

    let rules = by_kind("PrometheusRule");
    assert_eq!(rules.len(), 1);
    assert_eq!(str_at(&rules[0], "apiVersion"), "monitoring.coreos.com/v1");
    let alerts: BTreeSet<&str> = seq_at(&rules[0], "spec.groups")
        .iter()
        .flat_map(|g| seq_at(g, "rules"))
        .map(|r| {
            str_at(r, "expr");
            str_at(r, "labels.severity");
            str_at(r, "alert")
        })
        .collect();
    assert_eq!(
        alerts,
        BTreeSet::from(["CrossRegionExportDown", "CrossRegionQueueBacklog"])
    );
}

/// The environment the pod gives the container mounting ConfigMap `cm`.
fn pod_env(docs: &[(String, Value)], cm: &str) -> Vec<(String, String)> {
    for (_, w) in docs
        .iter()
        .filter(|(_, d)| ["Deployment", "StatefulSet"].contains(&kind(d)))
    {
        let pod = get(w, "spec.template.spec").unwrap();
        let mounts_it = seq_at(pod, "volumes")
            .iter()
            .any(|v| get(v, "configMap.name").and_then(Value::as_str) == Some(cm));
        if mounts_it {
            return seq_at(&seq_at(pod, "containers")[0], "env")
                .iter()
                .map(|e| {
                    (
                        str_at(e, "name").to_string(),
                        str_at(e, "value").to_string(),
                    )
                })
                .collect();
        }
    }
    panic!("no workload mounts ConfigMap {cm}");
}

#[test]
fn configmap_configs_pass_validate() {
    let docs = manifests();
    // Certificates where the pods mount their Secrets (CERT_DIR stands in for /certs), and
    // queue directories (QUEUE_DIR for /var/otel/queue).
    let ca = tls_support::Ca::new("k8s check CA");
    let leaf = ca.server(&["localhost"]);
    let certs = tempfile::tempdir().unwrap();
    for (f, pem) in [
        ("ca.crt", &ca.pem),
        ("tls.crt", &leaf.cert),
        ("tls.key", &leaf.key),
        ("token", &"k8s-check-token".to_owned()),
    ] {
        std::fs::write(certs.path().join(f), pem).unwrap();
    }
    let queues = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (file, cm) in docs.iter().filter(|(_, d)| kind(d) == "ConfigMap") {
        // The key has a dot: not a path.
        let config = get(cm, "data")
            .and_then(|d| d.get("config.yaml"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{file}: ConfigMap {} has no config.yaml", name(cm)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_wasmcol"))
            .arg("validate")
            .arg("--config")
            .arg(&path)
            .env_clear()
            .envs(pod_env(&docs, name(cm)))
            .env("CERT_DIR", certs.path())
            .env("QUEUE_DIR", queues.path())
            .env("WASMCOL_CACHE_DIR", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: ConfigMap {}: {}{}",
            name(cm),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 3, "one config per tier");
}

#[test]
fn alert_rules_pass_promtool() {
    if !promtool::available().unwrap() {
        eprintln!("SKIPPED: promtool not installed (Debian: apt-get install prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    promtool::write_rules(dir.path()).unwrap();
    std::fs::copy(
        k8s_dir().join("alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .unwrap();
    promtool::run(dir.path(), &["check", "rules", "alerts.rules.yaml"]).unwrap();
    promtool::run(dir.path(), &["test", "rules", "alerts.test.yaml"]).unwrap();
}
