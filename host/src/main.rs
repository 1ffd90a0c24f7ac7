//! The `kwex` binary: parse flags, set up logs and the runtime, run a command.
//!
//! Everything of substance lives in the library; this file only turns flags
//! into settings, signals into the shutdown token, and results into exit codes.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use kwex::config::{Cli, Command, Replay};
use kwex::pipeline::{self, NormalizeMetrics, Pipeline};
use kwex::sink::stdout::{self, StdoutSink};
use kwex::source::replay::{self, ReplaySource};
use kwex::telemetry::logging;
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
        Command::Replay(args) => {
            let replay = match args.validate() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("kwex: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match runtime().and_then(|rt| rt.block_on(run_replay(replay))) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("kwex: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn run_replay(replay: Replay) -> anyhow::Result<ExitCode> {
    let registry = prometheus::Registry::new();
    let source_metrics = replay::Metrics::register(&registry)?;
    let sink_metrics = stdout::Metrics::register(&registry)?;
    let normalize_metrics = NormalizeMetrics::register(&registry)?;

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_to_token(shutdown.clone()));

    let source = ReplaySource::new(
        replay.input.clone(),
        replay.input_format,
        source_metrics,
        replay.progress,
    );
    let sink = StdoutSink::new(
        Box::new(std::io::stdout()),
        replay.output_format,
        replay.normalizer.id_mode,
        sink_metrics,
    );
    let pipeline = Pipeline::new(
        replay.pipeline.clone(),
        replay.normalizer.clone(),
        normalize_metrics,
    );
    let result = pipeline
        .run(|tx, stop| source.run(tx, stop), |rx| sink.run(rx), shutdown)
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
