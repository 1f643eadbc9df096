//! Upstream's include/exclude matching (`internal/filter/filterconfig`, `filterspan`,
//! `filterlog`, `filtermatcher`, `filterset`): within one block every given property must
//! match (AND); within a property's list any entry may match (OR). `libraries` entries must
//! all match, as upstream's loop does.

use regex::Regex;
use serde::Deserialize;
use wasmcol_sdk::{LogInfo, ScopeInfo, Signal, Value};

use crate::Attrs;

/// `include:` / `exclude:` as written in YAML.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// `strict` or `regexp`.
    #[serde(default)]
    pub match_type: String,
    /// Regexp cache options; accepted for compatibility (there is nothing to cache here).
    #[serde(default)]
    pub regexp: Option<RegexpOptions>,
    /// `service.name` of the resource.
    #[serde(default)]
    pub services: Vec<String>,
    /// Span names.
    #[serde(default)]
    pub span_names: Vec<String>,
    /// Span kinds (`SPAN_KIND_SERVER`...).
    #[serde(default)]
    pub span_kinds: Vec<String>,
    /// Log bodies (as strings).
    #[serde(default)]
    pub log_bodies: Vec<String>,
    /// Log severity texts.
    #[serde(default)]
    pub log_severity_texts: Vec<String>,
    /// Minimum log severity number.
    #[serde(default)]
    pub log_severity_number: Option<SeverityConfig>,
    /// Metric names.
    #[serde(default)]
    pub metric_names: Vec<String>,
    /// Item attributes.
    #[serde(default)]
    pub attributes: Vec<AttributeConfig>,
    /// Resource attributes.
    #[serde(default)]
    pub resources: Vec<AttributeConfig>,
    /// Instrumentation scopes.
    #[serde(default)]
    pub libraries: Vec<LibraryConfig>,
}

/// `regexp:` options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexpOptions {
    /// Accepted, unused.
    #[serde(default)]
    pub cacheenabled: bool,
    /// Accepted, unused.
    #[serde(default)]
    pub cachemaxnumentries: u64,
}

/// `log_severity_number:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    /// A number or a severity name (`INFO`, `warn2`...).
    #[serde(default)]
    pub min: Option<serde_json::Value>,
    /// Also match records with no severity.
    #[serde(default)]
    pub match_undefined: bool,
}

/// One attribute condition.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    /// Key that must be present.
    pub key: String,
    /// Value it must have (strict) or match (regexp); absent means "key present".
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

/// One scope condition.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    /// Scope name.
    pub name: String,
    /// Scope version, when given.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug)]
enum Strings {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

impl Strings {
    fn build(list: &[String], regexp: bool) -> Result<Option<Strings>, String> {
        if list.is_empty() {
            return Ok(None);
        }
        Ok(Some(if regexp {
            Strings::Regexp(
                list.iter()
                    .map(|p| Regex::new(p).map_err(|e| format!("error parsing regexp: {e}")))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            Strings::Strict(list.to_vec())
        }))
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Strings::Strict(l) => l.iter().any(|x| x == s),
            Strings::Regexp(l) => l.iter().any(|re| re.is_match(s)),
        }
    }
}

#[derive(Debug)]
enum AttrCond {
    Exists(String),
    Equal(String, Value),
    Regexp(String, Regex),
}

impl AttrCond {
    fn matches(&self, attrs: &Attrs) -> bool {
        let find = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        match self {
            AttrCond::Exists(k) => find(k).is_some(),
            AttrCond::Equal(k, want) => find(k).is_some_and(|v| v == want),
            // Upstream matches the string form of strings, booleans, ints and doubles only.
            AttrCond::Regexp(k, re) => find(k).is_some_and(|v| match v {
                Value::Str(_) | Value::Bool(_) | Value::Int(_) | Value::Double(_) => {
                    re.is_match(&v.to_string_lossy())
                }
                _ => false,
            }),
        }
    }
}

fn attr_conds(list: &[AttributeConfig], regexp: bool) -> Result<Vec<AttrCond>, String> {
    list.iter()
        .map(|a| {
            let value = match &a.value {
                None | Some(serde_json::Value::Null) => return Ok(AttrCond::Exists(a.key.clone())),
                Some(v) => v,
            };
            if regexp {
                match value {
                    serde_json::Value::String(p) => Regex::new(p)
                        .map(|re| AttrCond::Regexp(a.key.clone(), re))
                        .map_err(|e| format!("error parsing regexp: {e}")),
                    other => Err(format!(
                        "match_type=regexp for {:?} only supports Str, but found {}",
                        a.key,
                        json_type(other)
                    )),
                }
            } else {
                Value::from_json(value)
                    .map(|v| AttrCond::Equal(a.key.clone(), v))
                    .ok_or_else(|| format!("{:?}: lists and maps are not supported", a.key))
            }
        })
        .collect()
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "Empty",
        serde_json::Value::Bool(_) => "Bool",
        serde_json::Value::Number(n) if n.is_i64() => "Int",
        serde_json::Value::Number(_) => "Double",
        serde_json::Value::String(_) => "Str",
        serde_json::Value::Array(_) => "Slice",
        serde_json::Value::Object(_) => "Map",
    }
}

/// A compiled include or exclude block.
#[derive(Debug)]
pub struct Matcher {
    services: Option<Strings>,
    span_names: Option<Strings>,
    span_kinds: Option<Strings>,
    log_bodies: Option<Strings>,
    log_severity_texts: Option<Strings>,
    severity: Option<(i32, bool)>,
    metric_names: Option<Strings>,
    attributes: Vec<AttrCond>,
    resources: Vec<AttrCond>,
    libraries: Vec<(Strings, Option<Strings>)>,
}

/// What a matcher may look at for one item; fields a matcher does not use may be left empty
/// (see the `needs_*` methods).
#[derive(Clone, Copy, Default)]
pub struct Subject<'a> {
    /// Resource attributes.
    pub resource: Option<&'a Attrs>,
    /// Scope name and version.
    pub scope: Option<&'a ScopeInfo>,
    /// Item attributes.
    pub attributes: Option<&'a Attrs>,
    /// Span name and kind.
    pub span: Option<(&'a str, i32)>,
    /// Log record fields.
    pub log: Option<&'a LogInfo>,
    /// Metric name.
    pub metric_name: Option<&'a str>,
}

fn span_kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn severity_number(v: &serde_json::Value) -> Result<i32, String> {
    if let Some(n) = v.as_i64() {
        return i32::try_from(n).map_err(|_| format!("invalid severity number {n}"));
    }
    let s = v.as_str().unwrap_or_default().to_uppercase();
    let (base, level) = match s.trim_end_matches(['2', '3', '4']) {
        "TRACE" => ("TRACE", 1),
        "DEBUG" => ("DEBUG", 5),
        "INFO" => ("INFO", 9),
        "WARN" => ("WARN", 13),
        "ERROR" => ("ERROR", 17),
        "FATAL" => ("FATAL", 21),
        _ => return Err(format!("unrecognized severity string, \"{s}\"")),
    };
    let offset = match &s[base.len()..] {
        "" => 0,
        "2" => 1,
        "3" => 2,
        "4" => 3,
        _ => return Err(format!("unrecognized severity string, \"{s}\"")),
    };
    Ok(level + offset)
}

impl Matcher {
    /// Compiles a block for `signal`, with upstream's validation messages.
    pub fn build(cfg: &MatchConfig, signal: Signal) -> Result<Matcher, String> {
        match signal {
            Signal::Traces => {
                if !cfg.log_bodies.is_empty() {
                    return Err("log_bodies should not be specified for trace spans".into());
                }
                if !cfg.log_severity_texts.is_empty() {
                    return Err("log_severity_texts should not be specified for trace spans".into());
                }
                if cfg.log_severity_number.is_some() {
                    return Err(
                        "log_severity_number should not be specified for trace spans".into(),
                    );
                }
                if cfg.services.is_empty()
                    && cfg.span_names.is_empty()
                    && cfg.attributes.is_empty()
                    && cfg.libraries.is_empty()
                    && cfg.resources.is_empty()
                    && cfg.span_kinds.is_empty()
                {
                    return Err(r#"at least one of "services", "span_names", "span_kinds", "attributes", "libraries" or "resources" field must be specified"#.into());
                }
            }
            Signal::Logs => {
                if !cfg.span_names.is_empty() || !cfg.services.is_empty() {
                    return Err(
                        "neither services nor span_names should be specified for log records"
                            .into(),
                    );
                }
                if cfg.attributes.is_empty()
                    && cfg.libraries.is_empty()
                    && cfg.resources.is_empty()
                    && cfg.log_bodies.is_empty()
                    && cfg.log_severity_texts.is_empty()
                    && cfg.log_severity_number.is_none()
                    && cfg.span_kinds.is_empty()
                {
                    return Err(r#"at least one of "attributes", "libraries", "span_kinds", "resources", "log_bodies", "log_severity_texts" or "log_severity_number" field must be specified"#.into());
                }
            }
            Signal::Metrics => {
                if !cfg.span_names.is_empty()
                    || !cfg.services.is_empty()
                    || !cfg.span_kinds.is_empty()
                    || !cfg.log_bodies.is_empty()
                    || !cfg.log_severity_texts.is_empty()
                    || cfg.log_severity_number.is_some()
                {
                    return Err("only metric_names, attributes, resources and libraries may be specified for metrics".into());
                }
                if cfg.metric_names.is_empty()
                    && cfg.attributes.is_empty()
                    && cfg.resources.is_empty()
                    && cfg.libraries.is_empty()
                {
                    return Err(r#"at least one of "metric_names", "attributes", "libraries" or "resources" field must be specified"#.into());
                }
            }
        }
        let regexp = match cfg.match_type.as_str() {
            "regexp" => true,
            "strict" => false,
            other => {
                return Err(format!(
                    "unrecognized match_type: '{other}', valid types are: [regexp strict]"
                ));
            }
        };
        let severity = match &cfg.log_severity_number {
            Some(s) => Some((
                match &s.min {
                    Some(v) => severity_number(v)?,
                    None => 0,
                },
                s.match_undefined,
            )),
            None => None,
        };
        let libraries = cfg
            .libraries
            .iter()
            .map(|l| {
                let name = Strings::build(std::slice::from_ref(&l.name), regexp)?;
                let version = match &l.version {
                    Some(v) => Strings::build(std::slice::from_ref(v), regexp)?,
                    None => None,
                };
                Ok((
                    name.unwrap_or(Strings::Strict(vec![String::new()])),
                    version,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Matcher {
            services: Strings::build(&cfg.services, regexp)?,
            span_names: Strings::build(&cfg.span_names, regexp)?,
            span_kinds: Strings::build(&cfg.span_kinds, regexp)?,
            log_bodies: Strings::build(&cfg.log_bodies, regexp)?,
            log_severity_texts: Strings::build(&cfg.log_severity_texts, regexp)?,
            severity,
            metric_names: Strings::build(&cfg.metric_names, regexp)?,
            attributes: attr_conds(&cfg.attributes, regexp)?,
            resources: attr_conds(&cfg.resources, regexp)?,
            libraries,
        })
    }

    /// Whether the resource's attributes are looked at.
    pub fn needs_resource(&self) -> bool {
        self.services.is_some() || !self.resources.is_empty()
    }
    /// Whether the scope is looked at.
    pub fn needs_scope(&self) -> bool {
        !self.libraries.is_empty()
    }
    /// Whether span name or kind is looked at.
    pub fn needs_span(&self) -> bool {
        self.span_names.is_some() || self.span_kinds.is_some()
    }
    /// Whether log record fields are looked at.
    pub fn needs_log(&self) -> bool {
        self.log_bodies.is_some() || self.log_severity_texts.is_some() || self.severity.is_some()
    }
    /// Whether the metric name is looked at.
    pub fn needs_metric_name(&self) -> bool {
        self.metric_names.is_some()
    }

    /// Whether the item matches every property of the block.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let empty = Attrs::new();
        let resource = s.resource.unwrap_or(&empty);
        if let Some(services) = &self.services {
            let name = resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.to_string_lossy())
                .unwrap_or_else(|| "<nil-service-name>".to_owned());
            if !services.matches(&name) {
                return false;
            }
        }
        if let Some(names) = &self.span_names
            && !names.matches(s.span.map(|(n, _)| n).unwrap_or_default())
        {
            return false;
        }
        if let Some(kinds) = &self.span_kinds
            && !kinds.matches(span_kind_name(s.span.map(|(_, k)| k).unwrap_or_default()))
        {
            return false;
        }
        if let Some(bodies) = &self.log_bodies
            && !bodies.matches(&s.log.map(|l| l.body.to_string_lossy()).unwrap_or_default())
        {
            return false;
        }
        if let Some(texts) = &self.log_severity_texts
            && !texts.matches(s.log.map(|l| l.severity_text.as_str()).unwrap_or_default())
        {
            return false;
        }
        if let Some((min, undefined)) = self.severity {
            let n = s.log.map(|l| l.severity_number).unwrap_or_default();
            let ok = if n == 0 { undefined } else { n >= min };
            if !ok {
                return false;
            }
        }
        if let Some(names) = &self.metric_names
            && !names.matches(s.metric_name.unwrap_or_default())
        {
            return false;
        }
        let default_scope = ScopeInfo::default();
        let scope = s.scope.unwrap_or(&default_scope);
        for (name, version) in &self.libraries {
            if !name.matches(&scope.name) {
                return false;
            }
            if let Some(v) = version
                && !v.matches(&scope.version)
            {
                return false;
            }
        }
        if !self.resources.iter().all(|c| c.matches(resource)) {
            return false;
        }
        let attrs = s.attributes.unwrap_or(&empty);
        self.attributes.iter().all(|c| c.matches(attrs))
    }
}

/// An include block, an exclude block, or both: upstream's skip expression.
#[derive(Debug, Default)]
pub struct Selector {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
}

impl Selector {
    /// Compiles `include` and `exclude`; errors are returned with their key (`include` /
    /// `exclude`).
    pub fn build(
        include: Option<&MatchConfig>,
        exclude: Option<&MatchConfig>,
        signal: Signal,
    ) -> Result<Selector, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut build = |name: &str, cfg: Option<&MatchConfig>| {
            cfg.and_then(|c| match Matcher::build(c, signal) {
                Ok(m) => Some(m),
                Err(e) => {
                    errors.push((name.to_owned(), e));
                    None
                }
            })
        };
        let include = build("include", include);
        let exclude = build("exclude", exclude);
        if errors.is_empty() {
            Ok(Selector { include, exclude })
        } else {
            Err(errors)
        }
    }

    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    fn any(&self, f: impl Fn(&Matcher) -> bool) -> bool {
        self.include.as_ref().is_some_and(&f) || self.exclude.as_ref().is_some_and(&f)
    }

    /// Whether the resource's attributes are needed.
    pub fn needs_resource(&self) -> bool {
        self.any(Matcher::needs_resource)
    }
    /// Whether scope info is needed.
    pub fn needs_scope(&self) -> bool {
        self.any(Matcher::needs_scope)
    }
    /// Whether span info is needed.
    pub fn needs_span(&self) -> bool {
        self.any(Matcher::needs_span)
    }
    /// Whether log info is needed.
    pub fn needs_log(&self) -> bool {
        self.any(Matcher::needs_log)
    }
    /// Whether metric names are needed.
    pub fn needs_metric_name(&self) -> bool {
        self.any(Matcher::needs_metric_name)
    }

    /// Whether the item is processed: included (or no include) and not excluded.
    pub fn selects(&self, s: &Subject<'_>) -> bool {
        if let Some(i) = &self.include
            && !i.matches(s)
        {
            return false;
        }
        if let Some(e) = &self.exclude
            && e.matches(s)
        {
            return false;
        }
        true
    }
}
