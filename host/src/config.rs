//! Command-line flags (each also read from a `KWEX_…` environment variable),
//! and their validation into the typed settings the pipeline runs on.
//!
//! Every check that needs no I/O happens here, before anything starts, and a
//! failed check names the flag and says how to fix it. Flags inherited from
//! the k8s-stackdriver `event-exporter` (`--flush-delay`, `--max-buffer-size`,
//! `--max-concurrency`, `--resync-period`, `--metrics-address`) keep their
//! meaning and defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::document::{IdMode, IndexPattern, Normalizer};
use crate::pipeline::{self, OnInvalid};
use crate::sink::{batcher, search, stdout};
use crate::source::kube::{self as kube_source, EventApi};
use crate::source::replay::{Input, InputFormat};
use crate::spool::{self, FullPolicy};
use crate::telemetry::logging::LogFormat;

/// kwex — export Kubernetes Events to OpenSearch or Elasticsearch, through WebAssembly filters.
///
/// Kubernetes keeps Events for one hour; kwex keeps them searchable for as long as you want.
/// Every flag can also be set with an environment variable, named after the flag:
/// `--flush-delay` is `KWEX_FLUSH_DELAY`.
#[derive(Debug, Parser)]
#[command(name = "kwex", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Log format: `json` (one object per line), `text`, or `auto` (JSON unless stderr is a terminal).
    #[arg(
        long,
        global = true,
        env = "KWEX_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    /// Log level or filter, e.g. `info`, `debug`, `kwex=debug,info`. Default: `RUST_LOG`, else `info`.
    #[arg(long, global = true, env = "KWEX_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Feed Events from a file (or `-` for stdin) through the pipeline, to stdout.
    ///
    /// Accepts `kubectl get events -A -o json` output, NDJSON (one Event per line), or a
    /// concatenation of JSON documents; core/v1 and events.k8s.io/v1 Events alike. Invalid
    /// records are reported with their line and skipped (or stop the run with
    /// `--on-invalid=fail`).
    Replay(ReplayArgs),
    /// Watch the Events of a Kubernetes cluster and export them (the exporter itself).
    ///
    /// Lists every Event once (paginated), then watches; Added and Modified Events become
    /// documents. Uses the in-cluster configuration, else a kubeconfig (--kubeconfig, $KUBECONFIG,
    /// ~/.kube/config). Needs get, list and watch on events (see deploy/).
    Run(RunArgs),
    /// Check the configuration of `kwex run` and exit: 0 when valid, 2 with the reason when not.
    Check(RunArgs),
    /// Tools for filter authors: test a filter against Events and golden files, benchmark it,
    /// inspect a .wasm file.
    #[command(subcommand)]
    Filter(FilterCommand),
}

/// `kwex filter …`.
#[derive(Debug, Clone, Subcommand)]
pub enum FilterCommand {
    /// Run a filter over Events and print each answer as one NDJSON line; with --expect, compare
    /// with a golden file (exit 1 on a difference); with --conformance, also run the standard
    /// documents every filter must survive.
    ///
    /// Events are read like `kwex replay` reads them and normalized with the exporter's defaults,
    /// with kwex.observedAt fixed at 2000-01-01T00:00:00Z so that outputs are reproducible.
    Test(FilterTestArgs),
    /// Measure a filter: calls per second and µs per call (mean, p50, p99) over Events, looped.
    Bench(FilterBenchArgs),
    /// Show what a .wasm file is: its ABI, imports, exports, and whether (and why not) kwex would
    /// load it.
    Inspect(FilterInspectArgs),
}

/// The filter and how it runs, for `kwex filter test | bench | inspect`.
#[derive(Debug, Clone, Args)]
pub struct FilterUnderTest {
    /// The filter: a core module or a component.
    pub filter: PathBuf,
    /// Its config, handed to init: JSON text, or @FILE (JSON or YAML). Default null.
    #[arg(long)]
    pub config: Option<String>,
    /// Give the filter a real clock (WASI clocks); without it the clock reads 0 or fails.
    #[arg(long)]
    pub grant_clock: bool,
    /// Limits of the sandbox.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `kwex filter test`.
#[derive(Debug, Clone, Args)]
pub struct FilterTestArgs {
    /// The filter under test.
    #[command(flatten)]
    pub filter: FilterUnderTest,
    /// Events: a kubectl List, NDJSON, or a JSON array.
    pub events: PathBuf,
    /// Golden file (NDJSON): each output line must contain every field of its golden line.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Also run the built-in standard documents (huge message, unicode, missing fields, …);
    /// fail if any ends in a trap, timeout, memory error or invalid answer.
    #[arg(long)]
    pub conformance: bool,
}

/// `kwex filter bench`.
#[derive(Debug, Clone, Args)]
pub struct FilterBenchArgs {
    /// The filter under test.
    #[command(flatten)]
    pub filter: FilterUnderTest,
    /// Events: a kubectl List, NDJSON, or a JSON array.
    pub events: PathBuf,
    /// How long to measure (after a warm-up of 10% of it).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
}

/// `kwex filter inspect`.
#[derive(Debug, Clone, Args)]
pub struct FilterInspectArgs {
    /// The filter under test.
    #[command(flatten)]
    pub filter: FilterUnderTest,
}

/// Flags that shape the Document.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Documents")]
pub struct DocumentArgs {
    /// Value of the `cluster` field of every document (useful when several clusters share an index).
    #[arg(long, env = "KWEX_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Target index pattern; %Y %y %m %d %H %j %G %V are taken from the Event's first-seen time.
    #[arg(long, env = "KWEX_INDEX", default_value = "kwex-events-%Y.%m.%d")]
    pub index: IndexPattern,
    /// `occurrence`: one document per Event update (`<uid>:<resourceVersion>`, never duplicated);
    /// `latest`: one document per Event (`<uid>`), overwritten by updates.
    #[arg(long, env = "KWEX_ID_MODE", value_enum, default_value_t)]
    pub id_mode: IdMode,
    /// Messages longer than this are cut at a character boundary (the document records the original size).
    #[arg(long, env = "KWEX_MAX_MESSAGE_BYTES", default_value_t = 32 * 1024)]
    pub max_message_bytes: usize,
    /// Replace dots in label and annotation keys with `_`, for clusters without flattened/flat_object fields.
    #[arg(long, env = "KWEX_DEDOT")]
    pub dedot: bool,
}

/// Flags of the pipeline itself.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pipeline")]
pub struct PipelineArgs {
    /// `skip`: log and count an invalid record, go on; `fail`: stop at it and exit non-zero.
    #[arg(long, env = "KWEX_ON_INVALID", value_enum, default_value_t)]
    pub on_invalid: OnInvalid,
    /// How long the drain after SIGTERM/SIGINT may take before kwex exits anyway.
    #[arg(long, env = "KWEX_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Capacity of each channel between stages, in chunks of up to 256 records (memory vs. smoothing).
    #[arg(long, env = "KWEX_CHANNEL_CAPACITY", default_value_t = 16)]
    pub channel_capacity: usize,
}

/// Flags of `kwex replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The file to read, or `-` for stdin.
    pub file: PathBuf,
    /// Shape of the input; `auto` decides from the first line.
    #[arg(long, env = "KWEX_INPUT_FORMAT", value_enum, default_value_t)]
    pub input_format: InputFormat,
    /// Output: `ndjson` (one document per line) or `bulk` (a `_bulk` request body).
    #[arg(long, env = "KWEX_FORMAT", value_enum, default_value_t)]
    pub format: stdout::Format,
    /// Do not draw a progress bar (it is only drawn when stderr is a terminal anyway).
    #[arg(long, env = "KWEX_NO_PROGRESS")]
    pub no_progress: bool,
    /// Serve /metrics, /healthz and /readyz on this address while replaying (off by default).
    #[arg(long, env = "KWEX_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// Where documents go: `stdout`, or `search` (OpenSearch/Elasticsearch at --url, for back-filling).
    #[arg(long, env = "KWEX_SINK", value_enum, default_value = "stdout")]
    pub sink: SinkKind,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub search: SearchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub batch: BatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub spool: SpoolArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub document: DocumentArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub pipeline: PipelineArgs,
}

/// Flags of the exporter (`kwex run`), checked by `kwex check`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kube: KubeArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub leader: LeaderArgs,
    /// Where documents go: `search` (OpenSearch/Elasticsearch at --url) or `stdout`.
    #[arg(long, env = "KWEX_SINK", value_enum, default_value = "search")]
    pub sink: SinkKind,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub search: SearchArgs,
    /// With `--sink stdout`: `ndjson` (one document per line) or `bulk` (a `_bulk` request body).
    #[arg(long, env = "KWEX_FORMAT", value_enum, default_value_t)]
    pub format: stdout::Format,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub document: DocumentArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub batch: BatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub spool: SpoolArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,
    /// Period of the full re-list of Events (0 = never; watch bookmarks keep the watch current meanwhile).
    #[arg(long, env = "KWEX_RESYNC_PERIOD", default_value = "0s", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "KWEX_METRICS_ADDRESS", default_value = "0.0.0.0:9102")]
    pub metrics_address: SocketAddr,
}

/// Where documents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    /// OpenSearch or Elasticsearch, through `_bulk` (needs --url).
    Search,
    /// Standard output (NDJSON or a `_bulk` body, see --format).
    Stdout,
}

/// The OpenSearch / Elasticsearch sink's connection and behaviour.
///
/// Secrets are never flags (they would show in `ps` and in shell history):
/// they come from the environment (`KWEX_PASSWORD`, `KWEX_API_KEY`,
/// `KWEX_BEARER_TOKEN`) or from files (`--password-file`, …).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Search cluster")]
pub struct SearchArgs {
    /// Cluster URL(s), comma-separated; requests go round-robin and fail over.
    #[arg(long = "url", env = "KWEX_URL", value_delimiter = ',')]
    pub urls: Vec<String>,
    /// User for basic authentication; the password comes from KWEX_PASSWORD or --password-file.
    #[arg(long, env = "KWEX_USERNAME")]
    pub username: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long, env = "KWEX_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// File holding an Elasticsearch API key (base64 `id:key`); or set KWEX_API_KEY.
    #[arg(long, env = "KWEX_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// File holding a bearer token; or set KWEX_BEARER_TOKEN.
    #[arg(long, env = "KWEX_BEARER_TOKEN_FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// Sign requests with AWS SigV4 (Amazon OpenSearch Service / Serverless), credentials from the standard AWS chain.
    #[arg(long, env = "KWEX_AWS_SIGV4")]
    pub aws_sigv4: bool,
    /// AWS region for SigV4 (default: $AWS_REGION).
    #[arg(long, env = "KWEX_AWS_REGION")]
    pub aws_region: Option<String>,
    /// AWS service for SigV4: `es` (OpenSearch Service) or `aoss` (Serverless).
    #[arg(long, env = "KWEX_AWS_SERVICE", default_value = "es")]
    pub aws_service: String,
    /// Extra CA certificate(s) (PEM) to trust for the cluster.
    #[arg(long, env = "KWEX_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --client-key-file.
    #[arg(long, env = "KWEX_CLIENT_CERT_FILE")]
    pub client_cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, env = "KWEX_CLIENT_KEY_FILE")]
    pub client_key_file: Option<PathBuf>,
    /// Accept any server certificate. For test clusters only; logged as a warning.
    #[arg(long, env = "KWEX_INSECURE_SKIP_VERIFY")]
    pub insecure_skip_verify: bool,
    /// gzip request bodies (saves bandwidth, costs CPU).
    #[arg(long, env = "KWEX_GZIP")]
    pub gzip: bool,
    /// Bound on one request, from connect to the last byte of the answer.
    #[arg(long, env = "KWEX_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Index for documents the cluster refuses (mapping errors): pattern like --index.
    #[arg(
        long,
        env = "KWEX_DEAD_LETTER_INDEX",
        default_value = "kwex-dead-letter-%Y.%m.%d"
    )]
    pub dead_letter_index: IndexPattern,
    /// Retries of a document that keeps failing with 5xx before it is dead-lettered (429 retries forever).
    #[arg(long, env = "KWEX_MAX_ITEM_RETRIES", default_value_t = 10)]
    pub max_item_retries: u32,
    /// Longest wait between retries.
    #[arg(long, env = "KWEX_MAX_BACKOFF", default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_backoff: Duration,
    /// Install the index template (and with --retention-days an ISM/ILM policy) at start.
    #[arg(long, env = "KWEX_INSTALL_TEMPLATE")]
    pub install_template: bool,
    /// Name of the index template and retention policy.
    #[arg(long, env = "KWEX_TEMPLATE_NAME", default_value = "kwex-events")]
    pub template_name: String,
    /// With --install-template: delete indices older than this many days (ISM on OpenSearch, ILM on Elasticsearch).
    #[arg(long, env = "KWEX_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Write to this data stream instead of --index (always with `create`; needs --id-mode=occurrence).
    #[arg(long, env = "KWEX_DATA_STREAM")]
    pub data_stream: Option<String>,
}

/// Which Events to read, from which API server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kubernetes")]
pub struct KubeArgs {
    /// kubeconfig file; by default in-cluster config, else $KUBECONFIG, else ~/.kube/config.
    #[arg(long, env = "KWEX_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use instead of the current one.
    #[arg(long, env = "KWEX_CONTEXT")]
    pub context: Option<String>,
    /// Event API to read: `v1` (core) or `events.k8s.io/v1`.
    #[arg(long, env = "KWEX_EVENTS_API", value_enum, default_value_t)]
    pub events_api: EventApi,
    /// Namespaces to watch (repeat or comma-separate); all namespaces when absent.
    #[arg(long = "namespace", env = "KWEX_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only Events whose labels match, e.g. `team=payments`.
    #[arg(long, env = "KWEX_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// Only Events whose fields match, e.g. `type=Warning` or `involvedObject.kind=Pod`.
    #[arg(long, env = "KWEX_FIELD_SELECTOR")]
    pub field_selector: Option<String>,
    /// Events per page of the initial list (memory stays flat whatever the cluster holds).
    #[arg(long, env = "KWEX_LIST_PAGE_SIZE", default_value_t = 500)]
    pub list_page_size: u32,
    /// Sustained requests per second to the API server.
    #[arg(long, env = "KWEX_KUBE_API_QPS", default_value_t = 5.0)]
    pub kube_api_qps: f64,
    /// Requests allowed in a burst above --kube-api-qps.
    #[arg(long, env = "KWEX_KUBE_API_BURST", default_value_t = 10)]
    pub kube_api_burst: u32,
}

/// Leader election, so that replicas can stand by.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderArgs {
    /// Only the holder of a Lease exports; other replicas stand by and take over when it stops.
    #[arg(long, env = "KWEX_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "KWEX_LEADER_ELECT_LEASE_NAME", default_value = "kwex")]
    pub leader_elect_lease_name: String,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "KWEX_LEADER_ELECT_NAMESPACE")]
    pub leader_elect_namespace: Option<String>,
    /// This replica's identity in the Lease (default: $POD_NAME, else the host name).
    #[arg(long, env = "KWEX_LEADER_ELECT_IDENTITY")]
    pub leader_elect_identity: Option<String>,
    /// How long a Lease stays valid after its holder's last renewal.
    #[arg(long, env = "KWEX_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// A leader that could not renew for this long stops.
    #[arg(long, env = "KWEX_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// Pause between attempts to acquire or renew the Lease.
    #[arg(long, env = "KWEX_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub leader_elect_retry_period: Duration,
}

/// The Wasm filter chain's flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Filters: a directory of `.wasm` files run in lexical file-name order, a directory with a
    /// `pipeline.yaml`, or a pipeline file (in Kubernetes: a mounted ConfigMap). See docs/writing-filters.md.
    #[arg(long, env = "KWEX_FILTERS")]
    pub filters: Option<PathBuf>,
    /// Threads that run filters (0: one per CPU).
    #[arg(long, env = "KWEX_FILTER_WORKERS", default_value_t = 0)]
    pub filter_workers: usize,
    /// Limits of the sandbox.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// What a failing filter does to the document: `pass` it on unchanged, `drop` it, or `dead-letter` it.
    #[arg(long, env = "KWEX_FILTER_FAILURE_POLICY", value_enum, default_value_t)]
    pub filter_failure_policy: crate::filter::Policy,
    /// Index for documents a filter failed on (with `dead-letter`): pattern like --index.
    #[arg(
        long,
        env = "KWEX_FILTER_DEAD_LETTER_INDEX",
        default_value = "kwex-dead-letter-%Y.%m.%d"
    )]
    pub filter_dead_letter_index: IndexPattern,
    /// How often the filter directory is checked for changes (hot reload); 0 turns reloading off.
    #[arg(long, env = "KWEX_FILTER_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub filter_reload_interval: Duration,
}

/// Limits of the filter sandbox, shared by `run`, `replay` and `kwex filter`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Wall-clock deadline of one filter call (raise it on busy nodes).
    #[arg(long, env = "KWEX_FILTER_DEADLINE", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub filter_deadline: Duration,
    /// Memory cap of each filter instance (per linear memory); the instance is replaced above ¾ of it.
    #[arg(long, env = "KWEX_FILTER_MEMORY", default_value = "16MiB")]
    pub filter_memory: crate::filter::pipeline_file::Size,
    /// Fuel (instructions, roughly) per filter call, for a deterministic budget; off by default.
    #[arg(long, env = "KWEX_FILTER_FUEL")]
    pub filter_fuel: Option<u64>,
    /// Where compiled filters are cached (so a 10 s Python filter compiles once); `none` turns it off.
    /// Default: /var/lib/kwex/filter-cache when /var/lib/kwex is writable, else ~/.cache/kwex/filters.
    #[arg(long, env = "KWEX_FILTER_CACHE_DIR")]
    pub filter_cache_dir: Option<PathBuf>,
}

impl SandboxArgs {
    /// Engine settings from the flags.
    pub fn validate(&self) -> Result<crate::filter::Settings, ConfigError> {
        if self.filter_deadline.is_zero() || self.filter_deadline > Duration::from_secs(10) {
            return Err(bad(
                "filter-deadline",
                format!("{:?} is out of range", self.filter_deadline),
                "use 1ms to 10s",
            ));
        }
        let memory = self.filter_memory.0;
        if !(1 << 20..=4 << 30).contains(&memory) {
            return Err(bad(
                "filter-memory",
                format!("{memory} bytes is out of range"),
                "use 1MiB to 4GiB (Python and JavaScript filters need 64MiB or more)",
            ));
        }
        if self.filter_fuel == Some(0) {
            return Err(bad(
                "filter-fuel",
                "0 stops every call",
                "leave it out, or give a budget such as 100000000",
            ));
        }
        let mut engine = crate::filter::Settings::default();
        engine.limits.deadline = self.filter_deadline;
        engine.limits.start_deadline = engine.limits.start_deadline.max(self.filter_deadline);
        engine.limits.memory_bytes = memory;
        engine.limits.memory_watermark = memory / 4 * 3;
        engine.limits.fuel = self.filter_fuel;
        engine.cache_dir = self.cache_dir();
        Ok(engine)
    }

    /// The compiled-filter cache directory, absolute, or none.
    fn cache_dir(&self) -> Option<PathBuf> {
        let dir = match &self.filter_cache_dir {
            Some(dir) if dir.as_os_str() == "none" || dir.as_os_str().is_empty() => return None,
            Some(dir) => dir.clone(),
            None => {
                let system = std::path::Path::new("/var/lib/kwex");
                let writable = std::fs::metadata(system)
                    .map(|m| m.is_dir() && !m.permissions().readonly())
                    .unwrap_or(false);
                if writable {
                    system.join("filter-cache")
                } else {
                    let home = std::env::var_os("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .or_else(|| {
                            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))
                        })?;
                    home.join("kwex").join("filters")
                }
            }
        };
        std::path::absolute(&dir).ok()
    }
}

/// The filter chain, validated.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// What `--filters` points at.
    pub source: crate::filter::ChainSource,
    /// Worker threads.
    pub workers: usize,
    /// Engine settings (limits and policy).
    pub engine: crate::filter::Settings,
    /// Where failed documents go.
    pub dead_letter_index: IndexPattern,
    /// How often to look for changes; `None`: never.
    pub reload_interval: Option<Duration>,
}

impl FilterArgs {
    /// Checks the flags; `None` without `--filters`.
    pub fn validate(&self) -> Result<Option<FilterConfig>, ConfigError> {
        let Some(path) = &self.filters else {
            return Ok(None);
        };
        if !path.exists() {
            return Err(bad(
                "filters",
                format!("{} does not exist", path.display()),
                "give the directory holding the .wasm files (e.g. the mounted ConfigMap) or a pipeline file",
            ));
        }
        let workers = match self.filter_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n.min(256),
        };
        let mut engine = self.sandbox.validate()?;
        engine.policy = self.filter_failure_policy;
        let reload_interval = match self.filter_reload_interval {
            d if d.is_zero() => None,
            d if d < Duration::from_millis(100) => {
                return Err(bad(
                    "filter-reload-interval",
                    format!("{d:?} is too often"),
                    "use 100ms or more, or 0 to turn reloading off",
                ));
            }
            d => Some(d),
        };
        Ok(Some(FilterConfig {
            source: crate::filter::ChainSource::at(path),
            workers,
            engine,
            dead_letter_index: self.filter_dead_letter_index.clone(),
            reload_interval,
        }))
    }
}

/// Where documents wait between the filters and the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpoolKind {
    /// On disk, in `--spool-dir`: survives restarts and `kill -9`.
    Disk,
    /// In memory, bounded the same way: lost on restart (Events still in
    /// the API server are re-listed).
    Memory,
    /// No spool: documents go straight to the sink (replay only).
    None,
}

/// The spool's flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Spool")]
pub struct SpoolArgs {
    /// `disk`, `memory`, or `none`. Default: `disk` for `run`, `none` for `replay`.
    #[arg(long = "spool", env = "KWEX_SPOOL", value_enum)]
    pub spool: Option<SpoolKind>,
    /// Directory of the disk spool (an emptyDir or PVC in Kubernetes).
    #[arg(long, env = "KWEX_SPOOL_DIR", default_value = "/var/lib/kwex/spool")]
    pub spool_dir: PathBuf,
    /// Upper bound of the spool's size in bytes.
    #[arg(long, env = "KWEX_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,
    /// When the spool is full: `block` (the source waits; nothing is lost) or `drop-oldest`.
    #[arg(long, env = "KWEX_SPOOL_FULL", value_enum, default_value_t)]
    pub spool_full: FullPolicy,
}

/// The spool, validated.
#[derive(Debug, Clone)]
pub enum SpoolConfig {
    /// On disk.
    Disk(spool::Settings),
    /// In memory.
    Memory {
        /// Bound in bytes.
        max_bytes: u64,
        /// What happens when full.
        full: FullPolicy,
    },
}

impl SpoolArgs {
    /// Checks the flags; `default` is the kind when `--spool` is not given.
    pub fn validate(&self, default: SpoolKind) -> Result<Option<SpoolConfig>, ConfigError> {
        if self.spool_max_bytes < 1 << 20 {
            return Err(bad(
                "spool-max-bytes",
                format!("{} is below 1 MiB", self.spool_max_bytes),
                "use at least 1048576 (default 1 GiB)",
            ));
        }
        Ok(match self.spool.unwrap_or(default) {
            SpoolKind::None => None,
            SpoolKind::Memory => Some(SpoolConfig::Memory {
                max_bytes: self.spool_max_bytes,
                full: self.spool_full,
            }),
            SpoolKind::Disk => {
                let mut settings = spool::Settings::new(&self.spool_dir, self.spool_max_bytes);
                settings.full = self.spool_full;
                // 10 ms: documents are acknowledged to the source quickly and,
                // with appends in flight, throughput is not fsync-bound.
                settings.sync_interval = std::time::Duration::from_millis(10);
                Some(SpoolConfig::Disk(settings))
            }
        })
    }
}

/// Batching flags of the search-cluster sink (names and defaults from the stackdriver event-exporter).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Batching")]
pub struct BatchArgs {
    /// Send a batch at most this long after its first document.
    #[arg(long, env = "KWEX_FLUSH_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub flush_delay: Duration,
    /// Send a batch when it holds this many documents.
    #[arg(long, env = "KWEX_MAX_BUFFER_SIZE", default_value_t = 100)]
    pub max_buffer_size: usize,
    /// Send a batch when its body reaches this many bytes.
    #[arg(long, env = "KWEX_MAX_BATCH_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// At most this many `_bulk` requests in flight.
    #[arg(long, env = "KWEX_MAX_CONCURRENCY", default_value_t = 10)]
    pub max_concurrency: usize,
}

/// A flag whose value cannot work, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--{flag}: {problem}; {fix}")]
pub struct ConfigError {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub problem: String,
    /// What to do.
    pub fix: &'static str,
}

fn bad(flag: &'static str, problem: impl Into<String>, fix: &'static str) -> ConfigError {
    ConfigError {
        flag,
        problem: problem.into(),
        fix,
    }
}

/// `kwex replay`, validated.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Where the Events come from.
    pub input: Input,
    /// Its shape.
    pub input_format: InputFormat,
    /// What stdout gets.
    pub output_format: stdout::Format,
    /// The search sink, when documents go to a cluster.
    pub search: Option<SearchSink>,
    /// Whether a progress bar may be drawn.
    pub progress: bool,
    /// Where to serve metrics, if anywhere.
    pub metrics_address: Option<SocketAddr>,
    /// The spool, if any (default none for replay).
    pub spool: Option<SpoolConfig>,
    /// The filter chain, if any.
    pub filters: Option<FilterConfig>,
    /// Event → Document.
    pub normalizer: Normalizer,
    /// Pipeline settings.
    pub pipeline: pipeline::Settings,
}

/// `kwex run`, validated.
#[derive(Debug, Clone)]
pub struct Run {
    /// How to reach the API server.
    pub client: kube_source::client::ClientSettings,
    /// What to list and watch.
    pub source: kube_source::Settings,
    /// Leader election, when enabled.
    pub leader: Option<kube_source::leader::Settings>,
    /// The search sink, when documents go to a cluster (else stdout).
    pub search: Option<SearchSink>,
    /// Their format on stdout.
    pub format: stdout::Format,
    /// Event → Document.
    pub normalizer: Normalizer,
    /// Pipeline settings.
    pub pipeline: pipeline::Settings,
    /// Batching of the search-cluster sink.
    pub batch: BatchArgs,
    /// The spool (default: on disk).
    pub spool: Option<SpoolConfig>,
    /// The filter chain, if any.
    pub filters: Option<FilterConfig>,
    /// Full re-list period; `None` for never.
    pub resync_period: Option<Duration>,
    /// Address of the metrics server.
    pub metrics_address: SocketAddr,
}

/// The search sink, validated: everything needed to build it.
#[derive(Debug, Clone)]
pub struct SearchSink {
    /// The transport.
    pub client: search::client::Settings,
    /// Batching.
    pub batch: batcher::Settings,
    /// Delivery rules.
    pub writer: search::writer::Settings,
    /// The template to install, if asked.
    pub template: Option<search::template::Settings>,
    /// The data stream written to, if any (replaces the index of every document).
    pub data_stream: Option<String>,
}

impl SearchArgs {
    /// Checks the flags; `env` looks up secrets (`KWEX_PASSWORD`…).
    pub fn validate(
        &self,
        batch: &BatchArgs,
        normalizer: &Normalizer,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SearchSink, ConfigError> {
        batch.validate()?;
        if self.urls.is_empty() {
            return Err(bad(
                "url",
                "is missing",
                "give the cluster's address, e.g. --url https://opensearch.logging:9200 (or use --sink stdout)",
            ));
        }
        let mut urls = Vec::new();
        for raw in &self.urls {
            let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
                bad(
                    "url",
                    format!("{raw:?} is not a URL ({e})"),
                    "use e.g. https://opensearch.logging:9200",
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad(
                    "url",
                    format!("{raw:?} is not http or https"),
                    "use an http:// or https:// URL",
                ));
            }
            if url.query().is_some() {
                return Err(bad(
                    "url",
                    format!("{raw:?} has a query string"),
                    "give the base URL only",
                ));
            }
            urls.push(url);
        }
        let read_secret = |flag: &'static str, path: &PathBuf| -> Result<String, ConfigError> {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    flag,
                    format!("cannot read {}: {e}", path.display()),
                    "check the path and permissions",
                )
            })?;
            let secret = text.trim().to_owned();
            if secret.is_empty() {
                return Err(bad(
                    flag,
                    format!("{} is empty", path.display()),
                    "put the secret in the file",
                ));
            }
            Ok(secret)
        };
        let url_password = urls.iter().any(|u| u.password().is_some());
        let mut methods = Vec::new();
        // A secret comes from its file flag when given, else from its variable.
        let secret = |flag: &'static str,
                      file: &Option<PathBuf>,
                      var: &str|
         -> Result<Option<String>, ConfigError> {
            match file {
                Some(path) => read_secret(flag, path).map(Some),
                None => Ok(env(var).filter(|v| !v.is_empty())),
            }
        };
        let password = secret("password-file", &self.password_file, "KWEX_PASSWORD")?;
        if let Some(username) = &self.username {
            let Some(password) = password else {
                return Err(bad(
                    "username",
                    "is set but no password was given",
                    "set KWEX_PASSWORD or --password-file",
                ));
            };
            methods.push(search::Auth::Basic {
                username: username.clone(),
                password,
            });
        } else if password.is_some() {
            return Err(bad(
                "username",
                "is missing while a password is given",
                "set --username",
            ));
        }
        if let Some(key) = secret("api-key-file", &self.api_key_file, "KWEX_API_KEY")? {
            methods.push(search::Auth::ApiKey(key));
        }
        if let Some(token) = secret(
            "bearer-token-file",
            &self.bearer_token_file,
            "KWEX_BEARER_TOKEN",
        )? {
            methods.push(search::Auth::Bearer(token));
        }
        if self.aws_sigv4 {
            let region = self
                .aws_region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"));
            let Some(region) = region.filter(|r| !r.is_empty()) else {
                return Err(bad(
                    "aws-region",
                    "is needed with --aws-sigv4",
                    "set --aws-region or AWS_REGION",
                ));
            };
            if !matches!(self.aws_service.as_str(), "es" | "aoss") {
                return Err(bad(
                    "aws-service",
                    format!("{:?} is neither es nor aoss", self.aws_service),
                    "use es (OpenSearch Service) or aoss (Serverless)",
                ));
            }
            methods.push(search::Auth::SigV4 {
                region,
                service: self.aws_service.clone(),
                credentials: std::sync::Arc::new(
                    crate::sink::aws::credentials::CredentialsProvider::from_env(
                        crate::sink::aws::credentials::Env::process(),
                    ),
                ),
            });
        }
        if methods.len() + usize::from(url_password) > 1 {
            return Err(bad(
                "username",
                "more than one authentication method is configured (basic, API key, bearer token, SigV4, URL credentials)",
                "keep exactly one",
            ));
        }
        let mut auth = methods.pop().unwrap_or_default();
        if url_password && let Some(url) = urls.first() {
            auth = search::Auth::Basic {
                username: url.username().to_owned(),
                password: url.password().unwrap_or_default().to_owned(),
            };
            for url in &mut urls {
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
        }
        let client_cert = match (&self.client_cert_file, &self.client_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad(
                    "client-key-file",
                    "is missing",
                    "a client certificate needs its key",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "client-cert-file",
                    "is missing",
                    "a client key needs its certificate",
                ));
            }
        };
        if self.request_timeout.is_zero() {
            return Err(bad("request-timeout", "is 0", "use e.g. 30s"));
        }
        if self.max_backoff < Duration::from_millis(200) {
            return Err(bad("max-backoff", "is below 200ms", "use e.g. 60s"));
        }
        if let Some(stream) = &self.data_stream {
            IndexPattern::parse(stream).map_err(|e| {
                bad(
                    "data-stream",
                    format!("{stream:?}: {e}"),
                    "use a valid index name",
                )
            })?;
            if normalizer.id_mode != IdMode::Occurrence {
                return Err(bad(
                    "data-stream",
                    "needs --id-mode=occurrence",
                    "data streams only accept `create`, which --id-mode=latest cannot use",
                ));
            }
        }
        if self.retention_days == Some(0) {
            return Err(bad(
                "retention-days",
                "is 0",
                "use at least 1, or leave it out to keep indices",
            ));
        }
        if self.retention_days.is_some() && !self.install_template {
            return Err(bad(
                "retention-days",
                "has no effect without --install-template",
                "add --install-template",
            ));
        }
        let index_patterns = match &self.data_stream {
            Some(stream) => vec![stream.clone()],
            None => vec![format!("{}*", normalizer.index.literal_prefix())],
        };
        Ok(SearchSink {
            client: search::client::Settings {
                urls,
                auth,
                ca_file: self.ca_file.clone(),
                client_cert,
                insecure_skip_verify: self.insecure_skip_verify,
                gzip: self.gzip,
                request_timeout: self.request_timeout,
            },
            batch: batcher::Settings {
                max_documents: batch.max_buffer_size,
                max_bytes: batch.max_batch_bytes,
                flush_delay: batch.flush_delay,
                max_concurrency: batch.max_concurrency,
            },
            writer: search::writer::Settings {
                action: if self.data_stream.is_some() {
                    "create"
                } else {
                    normalizer.id_mode.bulk_action()
                },
                dead_letter_index: self.dead_letter_index.clone(),
                max_item_retries: self.max_item_retries,
                max_backoff: self.max_backoff,
            },
            template: self.install_template.then(|| search::template::Settings {
                name: self.template_name.clone(),
                index_patterns,
                retention_days: self.retention_days,
                data_stream: self.data_stream.is_some(),
            }),
            data_stream: self.data_stream.clone(),
        })
    }
}

impl DocumentArgs {
    /// Checks the flags and builds the normalizer.
    pub fn validate(&self) -> Result<Normalizer, ConfigError> {
        if self.max_message_bytes < 256 {
            return Err(bad(
                "max-message-bytes",
                format!(
                    "{} is too small to keep a useful message",
                    self.max_message_bytes
                ),
                "use at least 256 (the default, 32768, keeps every message Kubernetes itself writes)",
            ));
        }
        if let Some(name) = &self.cluster_name
            && name.trim().is_empty()
        {
            return Err(bad(
                "cluster-name",
                "is empty",
                "give a name, or leave the flag out",
            ));
        }
        Ok(Normalizer {
            cluster: self.cluster_name.clone(),
            index: self.index.clone(),
            id_mode: self.id_mode,
            max_message_bytes: self.max_message_bytes,
            dedot: self.dedot,
        })
    }
}

impl PipelineArgs {
    /// Checks the flags.
    pub fn validate(&self) -> Result<pipeline::Settings, ConfigError> {
        if self.channel_capacity == 0 || self.channel_capacity > 4096 {
            return Err(bad(
                "channel-capacity",
                format!("{} is out of range", self.channel_capacity),
                "use 1 to 4096",
            ));
        }
        if self.shutdown_timeout.is_zero() {
            return Err(bad(
                "shutdown-timeout",
                "is 0, so nothing in flight could be delivered",
                "use e.g. 30s",
            ));
        }
        Ok(pipeline::Settings {
            on_invalid: self.on_invalid,
            channel_capacity: self.channel_capacity,
            drain_timeout: self.shutdown_timeout,
        })
    }
}

impl BatchArgs {
    /// Checks the flags.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.flush_delay.is_zero() {
            return Err(bad(
                "flush-delay",
                "is 0",
                "use a positive delay such as 5s (a batch also leaves when full)",
            ));
        }
        if self.max_buffer_size == 0 {
            return Err(bad(
                "max-buffer-size",
                "is 0",
                "use at least 1 (default 100)",
            ));
        }
        if self.max_concurrency == 0 || self.max_concurrency > 256 {
            return Err(bad(
                "max-concurrency",
                format!("{} is out of range", self.max_concurrency),
                "use 1 to 256 (default 10)",
            ));
        }
        if self.max_batch_bytes < 64 * 1024 {
            return Err(bad(
                "max-batch-bytes",
                format!(
                    "{} is below 64 KiB, smaller than one large Event",
                    self.max_batch_bytes
                ),
                "use at least 65536 (default 5 MiB; most clusters accept up to 100 MB)",
            ));
        }
        Ok(())
    }
}

impl ReplayArgs {
    /// Checks every flag of `kwex replay`.
    pub fn validate(&self) -> Result<Replay, ConfigError> {
        self.batch.validate()?;
        let normalizer = self.document.validate()?;
        let search = match self.sink {
            SinkKind::Search => Some(
                self.search
                    .validate(&self.batch, &normalizer, &|k| std::env::var(k).ok())?,
            ),
            SinkKind::Stdout => None,
        };
        Ok(Replay {
            input: Input::from_arg(&self.file),
            input_format: self.input_format,
            output_format: self.format,
            search,
            progress: !self.no_progress,
            metrics_address: self.metrics_address,
            spool: self.spool.validate(SpoolKind::None)?,
            filters: self.filter.validate()?,
            normalizer,
            pipeline: self.pipeline.validate()?,
        })
    }
}

impl KubeArgs {
    /// Checks the flags.
    pub fn validate(
        &self,
        resync_period: Option<Duration>,
    ) -> Result<kube_source::Settings, ConfigError> {
        if self.list_page_size == 0 {
            return Err(bad(
                "list-page-size",
                "is 0",
                "use e.g. 500 (client-go's default)",
            ));
        }
        if !(self.kube_api_qps > 0.0 && self.kube_api_qps.is_finite()) {
            return Err(bad(
                "kube-api-qps",
                format!("{} is not a positive rate", self.kube_api_qps),
                "use e.g. 5",
            ));
        }
        if self.kube_api_burst == 0 {
            return Err(bad("kube-api-burst", "is 0", "use at least 1 (default 10)"));
        }
        for ns in &self.namespaces {
            let valid = !ns.is_empty()
                && ns.len() <= 63
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !ns.starts_with('-')
                && !ns.ends_with('-');
            if !valid {
                return Err(bad(
                    "namespace",
                    format!("{ns:?} is not a namespace name"),
                    "use lower-case DNS labels (a-z, 0-9, -), separated by commas",
                ));
            }
        }
        Ok(kube_source::Settings {
            api: self.events_api,
            namespaces: self.namespaces.clone(),
            label_selector: self.label_selector.clone().filter(|s| !s.is_empty()),
            field_selector: self.field_selector.clone().filter(|s| !s.is_empty()),
            page_size: self.list_page_size,
            resync_period,
            qps: self.kube_api_qps,
            burst: self.kube_api_burst,
        })
    }
}

impl LeaderArgs {
    /// Checks the flags; `None` when leader election is off.
    pub fn validate(&self) -> Result<Option<kube_source::leader::Settings>, ConfigError> {
        if !self.leader_elect {
            return Ok(None);
        }
        let (duration, deadline, retry) = (
            self.leader_elect_lease_duration,
            self.leader_elect_renew_deadline,
            self.leader_elect_retry_period,
        );
        if retry.is_zero() || deadline <= retry {
            return Err(bad(
                "leader-elect-renew-deadline",
                format!("{deadline:?} is not longer than --leader-elect-retry-period {retry:?}"),
                "the renew deadline must leave room for several retries (defaults: 10s and 2s)",
            ));
        }
        if duration <= deadline {
            return Err(bad(
                "leader-elect-lease-duration",
                format!(
                    "{duration:?} is not longer than --leader-elect-renew-deadline {deadline:?}"
                ),
                "a leader must give up before its Lease expires (defaults: 15s and 10s)",
            ));
        }
        let namespace = self
            .leader_elect_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let identity = self
            .leader_elect_identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                bad(
                    "leader-elect-identity",
                    "cannot be derived (no $POD_NAME, no host name)",
                    "set it explicitly",
                )
            })?;
        Ok(Some(kube_source::leader::Settings {
            name: self.leader_elect_lease_name.clone(),
            namespace,
            identity,
            lease_duration: duration,
            renew_deadline: deadline,
            retry_period: retry,
        }))
    }
}

impl RunArgs {
    /// Checks every flag of `kwex run`.
    pub fn validate(&self) -> Result<Run, ConfigError> {
        self.batch.validate()?;
        let normalizer = self.document.validate()?;
        let search = match self.sink {
            SinkKind::Search => Some(
                self.search
                    .validate(&self.batch, &normalizer, &|k| std::env::var(k).ok())?,
            ),
            SinkKind::Stdout => None,
        };
        let resync_period = (!self.resync_period.is_zero()).then_some(self.resync_period);
        Ok(Run {
            spool: self.spool.validate(SpoolKind::Disk)?,
            filters: self.filter.validate()?,
            search,
            client: kube_source::client::ClientSettings {
                kubeconfig: self.kube.kubeconfig.clone(),
                context: self.kube.context.clone(),
            },
            source: self.kube.validate(resync_period)?,
            leader: self.leader.validate()?,
            format: self.format,
            normalizer,
            pipeline: self.pipeline.validate()?,
            batch: self.batch.clone(),
            resync_period: (!self.resync_period.is_zero()).then_some(self.resync_period),
            metrics_address: self.metrics_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kwex").chain(args.iter().copied()))
    }

    fn check_error(args: &[&str]) -> ConfigError {
        let cli = parse(args).unwrap();
        match cli.command {
            Command::Check(run) => run.validate().unwrap_err(),
            _ => panic!("not check"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn stackdriver_defaults_are_kept() {
        let cli = parse(&["check", "--sink", "stdout"]).unwrap();
        let Command::Check(run) = cli.command else {
            panic!("not check")
        };
        let run = run.validate().unwrap();
        assert_eq!(run.batch.flush_delay, Duration::from_secs(5));
        assert_eq!(run.batch.max_buffer_size, 100);
        assert_eq!(run.batch.max_concurrency, 10);
        assert_eq!(run.resync_period, None);
    }

    #[test]
    fn validate_rejects_zero_flush_delay() {
        let e = check_error(&["check", "--sink", "stdout", "--flush-delay", "0s"]);
        assert_eq!(e.flag, "flush-delay");
    }

    #[test]
    fn validate_rejects_zero_max_buffer_size() {
        assert_eq!(
            check_error(&["check", "--sink", "stdout", "--max-buffer-size", "0"]).flag,
            "max-buffer-size"
        );
    }

    #[test]
    fn validate_rejects_out_of_range_concurrency() {
        assert_eq!(
            check_error(&["check", "--sink", "stdout", "--max-concurrency", "0"]).flag,
            "max-concurrency"
        );
        assert_eq!(
            check_error(&["check", "--sink", "stdout", "--max-concurrency", "1000"]).flag,
            "max-concurrency"
        );
    }

    #[test]
    fn validate_rejects_tiny_message_limit() {
        let e = check_error(&["check", "--sink", "stdout", "--max-message-bytes", "10"]);
        assert_eq!(e.flag, "max-message-bytes");
        assert!(
            e.to_string()
                .starts_with("--max-message-bytes: 10 is too small"),
            "{e}"
        );
    }

    #[test]
    fn validate_rejects_empty_cluster_name() {
        assert_eq!(
            check_error(&["check", "--sink", "stdout", "--cluster-name", " "]).flag,
            "cluster-name"
        );
    }

    #[test]
    fn bad_index_pattern_is_refused_naming_the_flag() {
        let e = parse(&["check", "--sink", "stdout", "--index", "Events-%Q"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--index"), "{e}");
    }

    #[test]
    fn bad_duration_is_refused_naming_the_flag() {
        let e = parse(&["check", "--sink", "stdout", "--flush-delay", "soon"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--flush-delay"), "{e}");
    }

    #[test]
    fn validate_rejects_bad_namespace_names() {
        assert_eq!(
            check_error(&[
                "check",
                "--sink",
                "stdout",
                "--namespace",
                "default,Kube_System"
            ])
            .flag,
            "namespace"
        );
    }

    #[test]
    fn validate_rejects_leader_timings_that_could_make_two_leaders() {
        let e = check_error(&[
            "check",
            "--sink",
            "stdout",
            "--leader-elect",
            "--leader-elect-identity",
            "a",
            "--leader-elect-lease-duration",
            "5s",
        ]);
        assert_eq!(e.flag, "leader-elect-lease-duration");
        let e = check_error(&[
            "check",
            "--sink",
            "stdout",
            "--leader-elect",
            "--leader-elect-identity",
            "a",
            "--leader-elect-retry-period",
            "20s",
        ]);
        assert_eq!(e.flag, "leader-elect-renew-deadline");
    }

    #[test]
    fn namespaces_may_be_comma_separated() {
        let cli = parse(&[
            "check",
            "--sink",
            "stdout",
            "--namespace",
            "a,b",
            "--namespace",
            "c",
        ])
        .unwrap();
        let Command::Check(run) = cli.command else {
            panic!("not check")
        };
        assert_eq!(run.validate().unwrap().source.namespaces, ["a", "b", "c"]);
    }

    fn search_error(args: &[&str], env: &[(&str, &str)]) -> ConfigError {
        let cli = parse(args).unwrap();
        let Command::Check(run) = cli.command else {
            panic!("not check")
        };
        let normalizer = run.document.validate().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        run.search
            .validate(&run.batch, &normalizer, &lookup)
            .unwrap_err()
    }

    #[test]
    fn validate_rejects_a_missing_url() {
        assert_eq!(search_error(&["check"], &[]).flag, "url");
    }

    #[test]
    fn validate_rejects_a_url_that_is_not_http() {
        let e = search_error(&["check", "--url", "ftp://x"], &[]);
        assert_eq!(e.flag, "url");
    }

    #[test]
    fn validate_rejects_a_username_without_password() {
        let e = search_error(
            &["check", "--url", "http://x:9200", "--username", "kwex"],
            &[],
        );
        assert_eq!(e.flag, "username");
        assert!(e.fix.contains("KWEX_PASSWORD"));
    }

    #[test]
    fn validate_rejects_two_authentication_methods() {
        let e = search_error(
            &["check", "--url", "http://x:9200", "--username", "kwex"],
            &[("KWEX_PASSWORD", "p"), ("KWEX_API_KEY", "k")],
        );
        assert!(
            e.problem.contains("more than one authentication method"),
            "{e}"
        );
    }

    #[test]
    fn validate_rejects_data_streams_with_latest_ids() {
        let e = search_error(
            &[
                "check",
                "--url",
                "http://x:9200",
                "--data-stream",
                "events",
                "--id-mode",
                "latest",
            ],
            &[],
        );
        assert_eq!(e.flag, "data-stream");
    }

    #[test]
    fn validate_rejects_sigv4_without_region() {
        let e = search_error(&["check", "--url", "https://x", "--aws-sigv4"], &[]);
        assert_eq!(e.flag, "aws-region");
    }

    #[test]
    fn credentials_in_the_url_become_basic_auth_and_leave_the_url() {
        let cli = parse(&["check", "--url", "https://kwex:s3cret@search.example:9200"]).unwrap();
        let Command::Check(run) = cli.command else {
            panic!("not check")
        };
        let sink = run.validate().unwrap().search.unwrap();
        assert_eq!(sink.client.urls[0].as_str(), "https://search.example:9200/");
        assert!(
            matches!(sink.client.auth, search::Auth::Basic { ref username, .. } if username == "kwex")
        );
    }

    #[test]
    fn replay_dash_means_stdin() {
        let cli = parse(&["replay", "-"]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("not replay")
        };
        assert_eq!(args.validate().unwrap().input, Input::Stdin);
    }
}
