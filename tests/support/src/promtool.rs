//! Running `promtool` (Debian's `prometheus` package) on the alert rules in `deploy/k8s`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable that turns a missing promtool from a skip into a failure (CI
/// sets it after installing the package).
pub const REQUIRE: &str = "WASMCOL_REQUIRE_PROMTOOL";

/// Whether promtool runs here. `Err` when it is missing although [`REQUIRE`] is `1`; a test
/// that gets `Ok(false)` prints why it skips.
pub fn available() -> Result<bool, String> {
    let runs = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs && std::env::var(REQUIRE).as_deref() == Ok("1") {
        return Err(format!("{REQUIRE}=1 but promtool is not installed"));
    }
    Ok(runs)
}

/// `deploy/k8s/prometheusrule.yaml`.
pub fn prometheus_rule() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/prometheusrule.yaml")
}

/// The name [`write_rules`] gives the rule file (what a promtool test's `rule_files` lists).
pub const RULES: &str = "alerts.rules.yaml";

/// Writes the rule groups of `deploy/k8s/prometheusrule.yaml` to `dir/`[`RULES`].
pub fn write_rules(dir: &Path) -> Result<(), String> {
    let manifest = std::fs::read_to_string(prometheus_rule()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(RULES), rule_file(&manifest)?).map_err(|e| e.to_string())
}

/// The rule groups of a `PrometheusRule` manifest (`spec.groups`) as a Prometheus rule file.
pub fn rule_file(prometheus_rule: &str) -> Result<String, String> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(prometheus_rule).map_err(|e| e.to_string())?;
    let groups = doc
        .get("spec")
        .and_then(|s| s.get("groups"))
        .ok_or("no spec.groups in the PrometheusRule")?;
    let mut file = serde_yaml::Mapping::new();
    file.insert("groups".into(), groups.clone());
    serde_yaml::to_string(&file).map_err(|e| e.to_string())
}

/// Runs `promtool ARGS` in `dir`; `Err` with its output when it fails.
pub fn run(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("promtool {args:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("promtool {args:?}:\n{text}"))
    }
}
