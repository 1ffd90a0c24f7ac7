//! The `kwex` binary: parse flags, set up logs and the runtime, run a command.
//!
//! Everything of substance lives in the library; this file only turns flags
//! into settings, signals into the shutdown token, and results into exit codes.

use std::process::ExitCode;

mod cli_filter;

use anyhow::Context as _;
use clap::Parser as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use kwex::config::{Cli, Command, FilterConfig, Replay, Run, SearchSink, SpoolConfig};
use kwex::pipeline::{self, NormalizeMetrics, Pipeline};
use kwex::sink::Sink;
use kwex::sink::search;
use kwex::sink::stdout::{self, StdoutSink};
use kwex::source::kube::{self as kube_source, KubeSource, leader::Elector};
use kwex::source::replay::{self, ReplaySource};
use kwex::telemetry::{http, logging};
use tokio_util::sync::CancellationToken;

/// Exit code for a configuration error (as clap uses for usage errors).
const EXIT_CONFIG: u8 = 2;
/// Exit code after an interruption by SIGINT/SIGTERM during `replay`.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("kwex: --log-level: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    match cli.command {
        Command::Check(args) => match args.validate() {
            Ok(run) => {
                tracing::info!(
                    index = ?run.normalizer.index,
                    flush_delay = ?run.batch.flush_delay,
                    max_buffer_size = run.batch.max_buffer_size,
                    max_concurrency = run.batch.max_concurrency,
                    metrics_address = %run.metrics_address,
                    "Configuration is valid."
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kwex: invalid configuration: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run(args) => {
            let run = match args.validate() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("kwex: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match block_on(run_exporter(run)) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "kwex stopped.");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Filter(command) => match cli_filter::run(command) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("kwex: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Replay(args) => {
            let replay = match args.validate() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("kwex: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match block_on(run_replay(replay)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("kwex: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs `task` on a new runtime. Blocking reads still pending at the end (a
/// stdin that never closes) are abandoned rather than waited for.
pub(crate) fn block_on<T>(task: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(task);
    rt.shutdown_background();
    result
}

async fn run_replay(replay: Replay) -> anyhow::Result<ExitCode> {
    let registry = prometheus::Registry::new();
    let source_metrics = replay::Metrics::register(&registry)?;
    let sink_metrics = stdout::Metrics::register(&registry)?;
    let normalize_metrics = NormalizeMetrics::register(&registry)?;

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_to_token(shutdown.clone()));
    let server_stop = CancellationToken::new();
    let _stop_server_on_return = server_stop.clone().drop_guard();
    if let Some(address) = replay.metrics_address {
        let (address, server) = http::bind(
            address,
            registry.clone(),
            http::Readiness::default(),
            server_stop.clone(),
        )
        .await?;
        tokio::spawn(server);
        tracing::info!(%address, "Serving /metrics, /healthz and /readyz.");
    }

    let source = ReplaySource::new(
        replay.input.clone(),
        replay.input_format,
        source_metrics,
        replay.progress,
    );
    let sink = match &replay.search {
        None => Sink::Stdout(StdoutSink::new(
            Box::new(std::io::stdout()),
            replay.output_format,
            replay.normalizer.id_mode,
            sink_metrics,
        )),
        Some(cfg) => {
            let Some(writer) = start_search_sink(cfg, &registry, &shutdown).await? else {
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            };
            Sink::Search {
                batch: cfg.batch,
                writer,
                data_stream: cfg.data_stream.clone(),
            }
        }
    };
    let queue = open_queue(replay.spool.as_ref(), &registry).await?;
    let filters = load_filters(replay.filters.as_ref(), &registry, &server_stop)?;
    let mut pipeline = Pipeline::new(
        replay.pipeline.clone(),
        replay.normalizer.clone(),
        normalize_metrics,
    );
    if let Some(filters) = filters {
        pipeline = pipeline.with_filters(filters);
    }
    let result = pipeline
        .run(
            |tx, stop| source.run(tx, stop),
            queue,
            |rx, ack| sink.run(rx, ack),
            shutdown,
        )
        .await;
    match result {
        Ok(summary) => {
            tracing::info!(
                input = %replay.input,
                records = summary.records,
                documents = summary.documents,
                invalid = summary.invalid,
                repaired = summary.repaired,
                "Replay finished."
            );
            Ok(if summary.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(pipeline::Error::Sink(e)) if is_broken_pipe(e.as_ref()) => {
            // `kwex replay … | head`: the reader has all it wanted.
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads the filter chain, if `--filters` was given.
fn load_filters(
    cfg: Option<&FilterConfig>,
    registry: &prometheus::Registry,
    stop: &CancellationToken,
) -> anyhow::Result<Option<pipeline::Filters>> {
    let Some(cfg) = cfg else { return Ok(None) };
    let engine = engine(cfg.engine.clone())?;
    let metrics = kwex::filter::Metrics::register(registry)?;
    let started = std::time::Instant::now();
    // Before reading: a change made while the chain loads is then reloaded.
    let baseline = kwex::filter::Snapshot::take(&cfg.source);
    let specs = cfg.source.specs(&engine)?;
    let chain = kwex::filter::Chain::from_specs(&engine, specs, &metrics)?;
    metrics.set_chain_len(chain.names().count());
    tracing::info!(
        source = %cfg.source.dir().display(), filters = ?chain.names().collect::<Vec<_>>(),
        workers = cfg.workers, took_ms = started.elapsed().as_millis() as u64,
        "Filter chain loaded."
    );
    let live = kwex::filter::LiveChain::new(chain);
    if let Some(interval) = cfg.reload_interval {
        kwex::filter::Reloader {
            engine,
            source: cfg.source.clone(),
            live: live.clone(),
            metrics,
            interval,
            baseline,
        }
        .spawn(stop.clone())
        .context("cannot start the filter reload thread")?;
    }
    Ok(Some(pipeline::Filters {
        chain: live,
        workers: cfg.workers,
        dead_letter_index: cfg.dead_letter_index.clone(),
    }))
}

/// The filter engine; without its compiled-filter cache if the cache
/// directory cannot be used (a read-only file system), which costs only
/// compile time.
pub(crate) fn engine(settings: kwex::filter::Settings) -> anyhow::Result<kwex::filter::Engine> {
    match kwex::filter::Engine::new(settings.clone()) {
        Ok(engine) => Ok(engine),
        Err(e) if settings.cache_dir.is_some() => {
            tracing::warn!(
                error = %e,
                dir = ?settings.cache_dir,
                "Cannot use the compiled-filter cache; filters are compiled at every start. \
                 Point --filter-cache-dir at a writable directory (or `none`)."
            );
            Ok(kwex::filter::Engine::new(kwex::filter::Settings {
                cache_dir: None,
                ..settings
            })?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens the spool (recovering what a previous run left), or none.
async fn open_queue(
    cfg: Option<&SpoolConfig>,
    registry: &prometheus::Registry,
) -> anyhow::Result<pipeline::Queue> {
    let Some(cfg) = cfg else {
        return Ok(pipeline::Queue::Direct);
    };
    let metrics = kwex::spool::Metrics::register(registry)?;
    Ok(match cfg {
        SpoolConfig::Memory { max_bytes, full } => pipeline::Queue::Spool {
            spool: Arc::new(kwex::spool::Spool::memory(*max_bytes, *full, metrics)),
            durable: false,
        },
        SpoolConfig::Disk(settings) => {
            let (spool, recovery) =
                kwex::spool::Spool::open_disk(settings.clone(), metrics).await?;
            if recovery.truncated_bytes > 0 || recovery.dropped_records > 0 {
                tracing::warn!(
                    dir = %settings.dir.display(), truncated_bytes = recovery.truncated_bytes,
                    dropped = recovery.dropped_records, damage = ?recovery.damaged,
                    "The spool was damaged (a crash during a write, or a corrupted disk); every intact document was kept."
                );
            }
            tracing::info!(
                dir = %settings.dir.display(), segments = recovery.segments, pending = recovery.records,
                "Spool opened; unacknowledged documents from the last run are sent again (their ids make that harmless)."
            );
            pipeline::Queue::Spool {
                spool: Arc::new(spool),
                durable: true,
            }
        }
    })
}

/// Connects to the search cluster, checks the credentials and TLS, installs
/// the template if asked, and returns the writer.
async fn start_search_sink(
    cfg: &SearchSink,
    registry: &prometheus::Registry,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<search::writer::Writer>> {
    if cfg.client.insecure_skip_verify {
        tracing::warn!(
            "TLS certificate verification is OFF (--insecure-skip-verify): use this only with a test cluster."
        );
    }
    let client = search::Client::new(&cfg.client)?;
    let mut backoff = kwex::backoff::Backoff::new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(30),
    );
    loop {
        match search::probe(&client).await? {
            Some(info) => {
                tracing::info!(url = %client.first_url(), flavor = ?info.flavor, version = %info.version, "Connected to the search cluster.");
                if let Some(template) = &cfg.template {
                    search::template::install(&client, &info, template)
                        .await
                        .map_err(search::Error::from)?;
                }
                break;
            }
            // Without a template to install, documents can wait for the cluster in the sink.
            None if cfg.template.is_none() => break,
            None => {
                let delay = backoff.next_delay();
                tracing::warn!(retry_in = ?delay, "Waiting for the search cluster to install the index template first.");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    let metrics = search::metrics::Metrics::register(registry)?;
    Ok(Some(search::writer::Writer::new(
        client,
        cfg.writer.clone(),
        metrics,
    )))
}

/// `kwex run`: watch the cluster, export until SIGTERM.
async fn run_exporter(run: Run) -> anyhow::Result<ExitCode> {
    let registry = prometheus::Registry::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_to_token(shutdown.clone()));

    let client = kube_source::client::connect(&run.client).await?;
    let source = KubeSource::new(
        client.clone(),
        run.source.clone(),
        kube_source::Metrics::register(&registry)?,
    );
    // Serve /metrics, /healthz and /readyz first: waiting for the search
    // cluster below must not make the pod unreachable for its probes.
    let exporting = Arc::new(AtomicBool::new(run.leader.is_none()));
    let search_answers: Arc<OnceLock<Arc<AtomicBool>>> = Arc::default();
    let mut readiness = http::Readiness::default();
    {
        // A standby replica is ready (standing by is its job); the leader once it has listed.
        let (synced, exporting) = (source.synced(), exporting.clone());
        readiness.add("initial_list", move || {
            synced.get() || !exporting.load(Ordering::Relaxed)
        });
    }
    if run.search.is_some() {
        let answers = search_answers.clone();
        readiness.add("search_cluster", move || {
            answers
                .get()
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
        });
    }
    let server_stop = CancellationToken::new();
    let (address, server) = http::bind(
        run.metrics_address,
        registry.clone(),
        readiness,
        server_stop.clone(),
    )
    .await?;
    let server = tokio::spawn(server);
    tracing::info!(%address, "Serving /metrics, /healthz and /readyz.");

    let sink = match &run.search {
        None => Sink::Stdout(StdoutSink::new(
            Box::new(std::io::stdout()),
            run.format,
            run.normalizer.id_mode,
            stdout::Metrics::register(&registry)?,
        )),
        Some(cfg) => {
            let Some(writer) = start_search_sink(cfg, &registry, &shutdown).await? else {
                server_stop.cancel();
                let _ = server.await;
                return Ok(ExitCode::SUCCESS);
            };
            let _ = search_answers.set(writer.reachable());
            Sink::Search {
                batch: cfg.batch,
                writer,
                data_stream: cfg.data_stream.clone(),
            }
        }
    };
    let queue = open_queue(run.spool.as_ref(), &registry).await?;
    let filters = load_filters(run.filters.as_ref(), &registry, &server_stop)?;
    let mut pipeline = Pipeline::new(
        run.pipeline.clone(),
        run.normalizer.clone(),
        NormalizeMetrics::register(&registry)?,
    );
    if let Some(filters) = filters {
        pipeline = pipeline.with_filters(filters);
    }

    let pipeline_stop = shutdown.child_token();
    let leader = match run.leader.clone() {
        None => None,
        Some(settings) => {
            let mut elector = Elector::new(client, settings, &registry)?;
            if !elector.acquire(&shutdown).await? {
                server_stop.cancel();
                let _ = server.await;
                return Ok(ExitCode::SUCCESS);
            }
            exporting.store(true, Ordering::Relaxed);
            let (shutdown, pipeline_stop) = (shutdown.clone(), pipeline_stop.clone());
            Some(tokio::spawn(async move {
                let held = elector.hold(&shutdown).await;
                if held.is_err() {
                    pipeline_stop.cancel();
                }
                held
            }))
        }
    };

    let result = pipeline
        .run(
            |tx, stop| source.run(tx, stop),
            queue,
            |rx, ack| sink.run(rx, ack),
            pipeline_stop,
        )
        .await;
    // Whatever ended the pipeline, give the Lease up and stop serving.
    shutdown.cancel();
    let held = match leader {
        Some(task) => task.await?,
        None => Ok(()),
    };
    server_stop.cancel();
    let _ = server.await;
    held?;
    let summary = result?;
    tracing::info!(
        documents = summary.documents,
        invalid = summary.invalid,
        "kwex stopped after draining."
    );
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Cancels `token` on SIGINT or SIGTERM; a second signal exits at once.
async fn signal_to_token(token: CancellationToken) {
    wait_for_signal().await;
    tracing::info!(
        "Shutdown signal received; draining what is in flight (a second signal exits at once)."
    );
    token.cancel();
    wait_for_signal().await;
    tracing::warn!("Second shutdown signal; exiting without draining.");
    std::process::exit(i32::from(EXIT_INTERRUPTED));
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGTERM; only SIGINT will stop kwex gracefully.");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
