//! `wasmcol`: an OpenTelemetry collector whose processors are WebAssembly components.

#![forbid(unsafe_code)]

mod components;
mod healthcheck;
mod logging;
mod plugin_new;
mod selflogs;
mod selfpush;
mod top;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasmcol_core::telemetry::{Level, MetricsOptions, PromNaming};
use wasmcol_core::{Metrics, config};
use wasmcol_wasm::{Runtime as PluginRuntime, RuntimeOptions};

/// mimalloc instead of glibc's malloc: with many worker threads glibc keeps freed batch
/// buffers in per-thread arenas, so RSS stays near the peak long after the data left.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wasmcol",
    version,
    about = "An OpenTelemetry collector with WebAssembly processors"
)]
struct Cli {
    #[command(flatten)]
    collector: CollectorArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The flags that configure a collector: the root command's and `validate`'s, as upstream.
#[derive(clap::Args, Default)]
struct CollectorArgs {
    /// Config file (repeatable; later files merge over earlier ones).
    #[arg(long = "config")]
    config: Vec<String>,
    /// Override a config value, e.g. `--set processors.batch.timeout=2s` (repeatable).
    #[arg(long = "set")]
    set: Vec<String>,
    /// Accepted for compatibility with upstream's command line; wasmcol has no feature gates.
    #[arg(long = "feature-gates")]
    feature_gates: Option<String>,
}

impl CollectorArgs {
    fn is_empty(&self) -> bool {
        self.config.is_empty() && self.set.is_empty() && self.feature_gates.is_none()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check a config, building every component and plugin, and print every problem.
    Validate(CollectorArgs),
    /// List the built-in component types and bundled plugins.
    Components,
    /// Inspect or try a plugin component.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// GET a URL (the `health_check` extension's) and exit 0 on a 2xx answer, non-zero with
    /// the reason otherwise: a container's HEALTHCHECK without curl.
    Healthcheck {
        /// The URL, e.g. `http://127.0.0.1:13133/`.
        #[arg(default_value = "http://127.0.0.1:13133/")]
        url: String,
        /// How long connecting and waiting for the status line may take, in seconds.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// A terminal view of a running collector's pipeline, read from its metrics endpoint.
    Top {
        /// The collector's Prometheus endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8888/metrics")]
        metrics: String,
        /// Seconds between refreshes (and the window rates are measured over).
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Print one table (rates over one interval) and exit.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a ready plugin project: Cargo.toml with the SDK vendored, src/lib.rs with unit
    /// tests, a sample batch.json and a collector.yaml that runs the plugin.
    New {
        /// The plugin's Cargo package name (letters, digits, `-`, `_`).
        name: String,
        /// The language of the project (only Rust today).
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Where to write it (must be absent or empty); default `./NAME`.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Print a plugin's name, version, signals, config schema and SHA-256.
    Inspect {
        /// The component (`.wasm`).
        file: String,
    },
    /// Run a plugin once over one export request, as a pipeline would, and print the
    /// outcome (forward, drop or error) with item counts and the resulting batch. Exits
    /// non-zero when the plugin fails on the batch.
    Run {
        /// The component (`.wasm`).
        file: String,
        /// The export request: OTLP/JSON, or OTLP protobuf with `--signal`; `-` reads stdin.
        #[arg(long)]
        input: String,
        /// The plugin's config: the body it has under `processors:` in a collector config,
        /// as JSON or YAML, or `@FILE` to read it from a file. Default: empty.
        #[arg(long = "plugin-config", default_value = "{}")]
        plugin_config: String,
        /// The signal of a protobuf input (OTLP/JSON names its own).
        #[arg(long, value_enum)]
        signal: Option<SignalArg>,
        /// `pretty`: plugin, input, outcome with counts, then the result as indented
        /// OTLP/JSON; `json`: only the result, on one line, for scripts.
        #[arg(long, value_enum, default_value = "pretty")]
        output: RunOutput,
    },
}

/// A signal on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SignalArg {
    Traces,
    Metrics,
    Logs,
}

impl From<SignalArg> for wasmcol_pdata::Signal {
    fn from(s: SignalArg) -> Self {
        match s {
            SignalArg::Traces => wasmcol_pdata::Signal::Traces,
            SignalArg::Metrics => wasmcol_pdata::Signal::Metrics,
            SignalArg::Logs => wasmcol_pdata::Signal::Logs,
        }
    }
}

/// How `plugin run` prints its result.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunOutput {
    Pretty,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.collector;
    let result = match cli.command {
        None => run(&root.config, &root.set),
        Some(Command::Validate(mut args)) => {
            // Upstream takes the flags before or after `validate`.
            args.config.splice(0..0, root.config);
            args.set.splice(0..0, root.set);
            validate(&args.config, &args.set)
        }
        Some(_) if !root.is_empty() => Err(anyhow::anyhow!(
            "--config, --set and --feature-gates configure a collector: they go with no \
             subcommand or with `validate` (a plugin's own config is `plugin run --plugin-config`)"
        )),
        Some(Command::Components) => list_components().map(|s| print!("{s}")),
        Some(Command::Plugin(cmd)) => plugin(cmd),
        Some(Command::Healthcheck { url, timeout }) => health(&url, timeout),
        Some(Command::Top {
            metrics,
            interval,
            once,
        }) => std::time::Duration::try_from_secs_f64(interval)
            .context("--interval")
            .and_then(|i| top::run(&metrics, i, once)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The plugin runtime every plugin of this process runs on.
fn plugin_runtime() -> anyhow::Result<Arc<PluginRuntime>> {
    Ok(Arc::new(
        PluginRuntime::new(RuntimeOptions::from_env())
            .context("cannot start the plugin runtime")?,
    ))
}

/// A language `plugin new` writes a project in.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Lang {
    Rust,
}

fn plugin(cmd: PluginCommand) -> anyhow::Result<()> {
    if let PluginCommand::New { name, lang, dir } = &cmd {
        let Lang::Rust = lang;
        let dir = plugin_new::create(name, dir.as_deref())?;
        print!("{}", plugin_new::next_steps(name, &dir));
        return Ok(());
    }
    // A command of its own: a current-thread runtime is all it needs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let plugins = plugin_runtime()?;
    match cmd {
        PluginCommand::Inspect { file } => {
            print!(
                "{}",
                rt.block_on(wasmcol_wasm::cli::inspect(&plugins, &file))?
            )
        }
        PluginCommand::Run {
            file,
            input,
            plugin_config,
            signal,
            output,
        } => {
            let config = match plugin_config.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--plugin-config: cannot read {path}"))?,
                None => plugin_config,
            };
            let config = wasmcol_wasm::cli::plugin_config(&config)?;
            let bytes = if input == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .context("cannot read the input from stdin")?;
                buf
            } else {
                std::fs::read(&input).with_context(|| format!("cannot read {input}"))?
            };
            let batch = wasmcol_wasm::cli::read_input(&bytes, signal.map(Into::into))?;
            let report = rt.block_on(wasmcol_wasm::cli::run(&plugins, &file, &config, batch))?;
            match output {
                RunOutput::Json => println!("{}", report.json()?),
                RunOutput::Pretty => print!("{}", report.pretty()?),
            }
            if report.failed() {
                anyhow::bail!("the plugin failed on the batch");
            }
        }
        PluginCommand::New { .. } => {}
    }
    Ok(())
}

fn health(url: &str, timeout: f64) -> anyhow::Result<()> {
    let timeout = std::time::Duration::try_from_secs_f64(timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--timeout {timeout}: must be a positive number of seconds"))?;
    let code = healthcheck::check(url, timeout)?;
    println!("{url}: HTTP {code}");
    Ok(())
}

fn load(paths: &[String], sets: &[String]) -> anyhow::Result<config::RawConfig> {
    if paths.is_empty() {
        anyhow::bail!("at least one config flag must be provided");
    }
    config::load(paths, sets).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

fn validate(paths: &[String], sets: &[String]) -> anyhow::Result<()> {
    let cfg = load(paths, sets)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let registry = components::registry(plugin_runtime()?);
    // Preparing loads and configures every plugin; nothing is started, so no port is bound.
    let built = {
        let _guard = rt.enter();
        wasmcol_core::build(&cfg, &registry, &Metrics::new())
    };
    let mut errors = match built {
        Ok(service) => match rt.block_on(service.prepare()) {
            Ok(()) => config::ConfigErrors::default(),
            Err(e) => e,
        },
        Err(e) => e,
    };
    if let Err(e) = cfg.service.telemetry.metrics.prometheus() {
        errors.push("service::telemetry::metrics", e);
    }
    // The periodic readers' exporters read their certificates and check their settings.
    if let Ok(pushes) = cfg.service.telemetry.metrics.periodic() {
        let _guard = rt.enter();
        let tasks = wasmcol_core::Tasks::new();
        for push in &pushes {
            if let Err(e) = selfpush::PeriodicReader::build(push, &tasks) {
                errors.push(
                    "service::telemetry::metrics",
                    config::KeyError::new("", e.to_string()),
                );
            }
        }
    }
    if errors.is_empty() {
        println!("config is valid");
        Ok(())
    } else {
        anyhow::bail!(
            "invalid configuration ({} problems):\n{errors}",
            errors.0.len()
        )
    }
}

fn list_components() -> anyhow::Result<String> {
    let mut out = String::new();
    let registry = components::registry(plugin_runtime()?);
    let mut last = None;
    for e in registry.entries() {
        if last != Some(e.kind) {
            out.push_str(&format!("{}:\n", e.kind.section()));
            last = Some(e.kind);
        }
        let aliases = if e.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also: {})", e.aliases.join(", "))
        };
        out.push_str(&format!("  {}{} - {}\n", e.name, aliases, e.description));
    }
    Ok(out)
}

fn run(paths: &[String], sets: &[String]) -> anyhow::Result<()> {
    let cfg = load(paths, sets)?;
    let log_exports = logging::init(&cfg.service.telemetry.logs)?;
    let nofile = wasmcol_core::conn_limits::raise_open_file_limit();
    tracing::debug!(open_file_limit = ?nofile, "open-file limit");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(serve(cfg, log_exports))
}

/// A random (version 4) UUID, upstream's default `service.instance.id`.
fn instance_id() -> String {
    let mut b = rand::random::<[u8; 16]>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn serve(
    cfg: config::RawConfig,
    log_exports: Vec<selflogs::LogExport>,
) -> anyhow::Result<()> {
    let telemetry_cfg = &cfg.service.telemetry;
    let level = Level::parse(&telemetry_cfg.metrics.level).unwrap_or(Level::Normal);
    let resource =
        Arc::new(telemetry_cfg.resource("wasmcol", &instance_id(), env!("CARGO_PKG_VERSION")));
    let prometheus = telemetry_cfg
        .metrics
        .prometheus()
        .map_err(|e| anyhow::anyhow!("service::telemetry::metrics: {e}"))?;
    // The SDK provider is built with every reader it will have: the resource goes on every
    // output (`target_info` on Prometheus, the OTLP resource on pushes).
    let metrics = Metrics::with_options(MetricsOptions {
        level,
        resource: resource.as_ref().clone(),
        pull: prometheus
            .iter()
            .map(|p| PromNaming {
                without_type_suffix: p.without_type_suffix,
                with_scope_info: !p.without_scope_info,
                resource_labels: p.resource_labels.clone(),
            })
            .collect(),
    });
    // The process series exist for the push readers too, not only on the Prometheus endpoint.
    wasmcol_core::telemetry::register_process_metrics(&metrics);
    let pushes = telemetry_cfg
        .metrics
        .periodic()
        .map_err(|e| anyhow::anyhow!("service::telemetry::metrics: {e}"))?;
    let plugins = plugin_runtime()?;
    let registry = components::registry(plugins.clone());
    // Building reads the files a config names (certificates, storage directories): off the
    // async workers, like every other blocking read.
    let build_metrics = metrics.clone();
    let service =
        tokio::task::spawn_blocking(move || wasmcol_core::build(&cfg, &registry, &build_metrics))
            .await
            .context("building the pipelines did not finish")?
            .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let mut telemetry = Vec::new();
    for (index, p) in prometheus.iter().enumerate() {
        let server =
            wasmcol_core::telemetry::serve(&p.endpoint, metrics.clone(), index, service.tasks())
                .await
                .with_context(|| format!("cannot serve metrics on {}", p.endpoint))?;
        tracing::info!(endpoint = %server.local_addr(), "Serving Prometheus metrics");
        telemetry.push(server);
    }
    for push in &pushes {
        selfpush::PeriodicReader::build(push, service.tasks())?
            .start(metrics.clone(), service.tasks())
            .await?;
        tracing::info!(reader = %push.path, "Pushing the collector's own metrics");
    }
    for export in log_exports {
        export.start(&metrics, &resource, service.tasks()).await?;
    }
    // Plugins load and compile on the blocking pool meanwhile: the metrics endpoint answers.
    tracing::info!("Preparing components (loading plugins)");
    service
        .prepare()
        .await
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    service
        .start()
        .await
        .context("cannot start the collector")?;
    let stop = stop_signal(plugins.clone());
    tracing::info!("Everything is ready. Begin running and processing data.");
    stop.await;
    tracing::info!(
        "Received signal, shutting down within {:?}",
        service.shutdown_timeout()
    );
    // The metrics server is one of the service's tasks: it stops with it, by its deadline.
    let clean = service.shutdown().await;
    // Every processor has stopped: stop and join the plugin epoch thread.
    plugins.shutdown();
    drop(telemetry);
    if !clean {
        anyhow::bail!(
            "shutdown did not finish cleanly within {:?}",
            service.shutdown_timeout()
        );
    }
    tracing::info!("Shutdown complete.");
    Ok(())
}

/// Installs the SIGTERM/SIGINT/SIGHUP handlers now and returns what waits for SIGTERM or
/// SIGINT: installed before "Everything is ready" is logged, a signal sent as soon as that
/// line appears drains the collector instead of killing it. SIGHUP meanwhile asks the `wasm`
/// processors to reload their components.
fn stop_signal(plugins: Arc<PluginRuntime>) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int), Ok(mut hup)) => loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => {
                        tracing::info!("Received SIGHUP: reloading the wasm processors' components");
                        plugins.request_reload();
                    }
                }
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
