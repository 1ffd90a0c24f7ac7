//! Hot reload: the chain workers run can be replaced while they run.
//!
//! A [`LiveChain`] holds the current [`Chain`] and a generation number.
//! Each worker thread holds a [`LiveWorker`], which checks the generation
//! (one atomic load) before each document and, when it changed, drops its
//! instances of the old chain and starts on the new one. A document is
//! therefore run through exactly one chain, old or new: a reload loses and
//! duplicates nothing.
//!
//! A [`Reloader`] thread polls the filter directory. When what it sees
//! changes (file names, sizes, modification times, and the target of a
//! ConfigMap's `..data` link, which Kubernetes swaps atomically on update)
//! and then stays the same for one more poll (so a file being copied in is
//! not read half-written), it loads the new chain off the hot path —
//! compiling and `init`ing every filter — and swaps it in. A chain that
//! fails to load leaves the old one running, with a log line naming the file
//! and the cause and `kwex_filter_reloads_total{result="failure"}`; the next
//! change to the directory is tried again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::document::Record;
use crate::filter::chain::{Chain, ChainWorker, Outcome};
use crate::filter::engine::Engine;
use crate::filter::metrics::Metrics;
use crate::filter::pipeline_file::ChainSource;

/// The chain in force, replaceable while workers use it.
#[derive(Debug)]
pub struct LiveChain {
    current: RwLock<Chain>,
    generation: AtomicU64,
}

impl LiveChain {
    /// Starts with `chain` (generation 0).
    pub fn new(chain: Chain) -> Arc<LiveChain> {
        Arc::new(LiveChain {
            current: RwLock::new(chain),
            generation: AtomicU64::new(0),
        })
    }

    /// The chain in force now.
    pub fn current(&self) -> Chain {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many times the chain was replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Puts `chain` in force; workers move to it before their next
    /// document.
    pub fn swap(&self, chain: Chain) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = chain;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// State for one worker thread.
    pub fn worker(self: &Arc<Self>) -> LiveWorker {
        let generation = self.generation();
        LiveWorker {
            worker: self.current().worker(),
            live: self.clone(),
            generation,
        }
    }
}

/// One worker's view of a [`LiveChain`].
#[derive(Debug)]
pub struct LiveWorker {
    live: Arc<LiveChain>,
    generation: u64,
    worker: ChainWorker,
}

impl LiveWorker {
    /// Runs `record` through the chain in force (see
    /// [`ChainWorker::apply`]), moving to a new chain first if one was
    /// swapped in.
    pub fn apply(&mut self, record: Record) -> Outcome {
        let generation = self.live.generation();
        if generation != self.generation {
            // Read the generation before the chain: at worst this picks up
            // an even newer chain and moves again on the next document.
            self.worker = self.live.current().worker();
            self.generation = generation;
        }
        self.worker.apply(record)
    }
}

/// Watches the filter directory and reloads the chain when it changes.
#[derive(Debug)]
pub struct Reloader {
    /// The engine new chains are compiled with.
    pub engine: Engine,
    /// What `--filters` points at.
    pub source: ChainSource,
    /// Where new chains go.
    pub live: Arc<LiveChain>,
    /// `kwex_filter_*`, reloads included.
    pub metrics: Metrics,
    /// How often the directory is looked at.
    pub interval: Duration,
    /// What the directory looked like when the running chain was read from
    /// it ([`Snapshot::take`] before loading): a change made while the chain
    /// loaded, or before this thread starts, is then not missed.
    pub baseline: Snapshot,
}

/// What the filter directory looks like, to tell later that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(Fingerprint);

impl Snapshot {
    /// Looks at the directory (and the pipeline file) of `source` now.
    pub fn take(source: &ChainSource) -> Snapshot {
        Snapshot(fingerprint(source.dir(), source))
    }
}

impl Reloader {
    /// Watches on its own thread until `stop` fires.
    pub fn spawn(self, stop: CancellationToken) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("kwex-filter-reload".into())
            .spawn(move || self.run(&stop))
    }

    fn run(self, stop: &CancellationToken) {
        let dir = self.source.dir().to_owned();
        let mut loaded = self.baseline.0.clone();
        let mut pending: Option<Fingerprint> = None;
        while !sleep(self.interval, stop) {
            let now = fingerprint(&dir, &self.source);
            if now == loaded {
                pending = None;
                continue;
            }
            // Changed: wait until it holds still for one poll.
            if pending.as_ref() != Some(&now) {
                pending = Some(now);
                continue;
            }
            pending = None;
            loaded = now;
            self.reload();
        }
    }

    /// Loads the chain again and swaps it in, or says why not.
    pub fn reload(&self) -> bool {
        let started = std::time::Instant::now();
        let loaded = self
            .source
            .specs(&self.engine)
            .and_then(|specs| Chain::from_specs(&self.engine, specs, &self.metrics));
        match loaded {
            Ok(chain) => {
                let names: Vec<String> = chain.names().map(str::to_owned).collect();
                self.metrics.chain_filters.set(names.len() as i64);
                self.live.swap(chain);
                self.metrics.reloads_ok.inc();
                tracing::info!(
                    filters = ?names,
                    generation = self.live.generation(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "Filter chain reloaded; workers move to it before their next document."
                );
                true
            }
            Err(error) => {
                self.metrics.reloads_failed.inc();
                tracing::error!(
                    error = %error,
                    dir = %self.source.dir().display(),
                    "The changed filter chain failed to load; the previous chain keeps running. \
                     Fix the file named (check it with `kwex filter test`); the next change is \
                     loaded again."
                );
                false
            }
        }
    }
}

/// Sleeps `time`, waking early on `stop`; true when stopped.
fn sleep(time: Duration, stop: &CancellationToken) -> bool {
    let step = Duration::from_millis(50);
    let mut left = time;
    while !left.is_zero() {
        if stop.is_cancelled() {
            return true;
        }
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
    stop.is_cancelled()
}

/// What is looked at to tell that the filters changed.
type Fingerprint = Vec<(String, Option<PathBuf>, u64, Option<SystemTime>)>;

/// Names, link targets, sizes and modification times of the directory's
/// entries (links followed), and of the pipeline file when `--filters`
/// names one.
fn fingerprint(dir: &Path, source: &ChainSource) -> Fingerprint {
    let mut seen = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            seen.push(entry_print(
                &path,
                entry.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    if let ChainSource::File(file) = source {
        seen.push(entry_print(file, file.display().to_string()));
    }
    seen.sort();
    seen
}

fn entry_print(path: &Path, name: String) -> (String, Option<PathBuf>, u64, Option<SystemTime>) {
    let target = std::fs::read_link(path).ok();
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, |m| m.len());
    let modified = meta.and_then(|m| m.modified().ok());
    (name, target, len, modified)
}
