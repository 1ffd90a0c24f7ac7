//! The one wasmtime [`Engine`] of the process, and the limits every filter
//! runs under.
//!
//! Why one engine: compiled code, the instance pool and the epoch counter
//! belong to an engine. Every chain (and every chain a hot reload builds)
//! shares it, so a reload reuses the pool instead of reserving a second one.
//!
//! How a call is bounded:
//! - **Time**: epoch interruption. A ticker thread increments the engine's
//!   epoch every [`Settings::epoch_tick`]; each call sets its store's
//!   deadline a number of ticks ahead, and compiled code checks the epoch at
//!   function entries and loop headers, so even `loop {}` stops. Measured
//!   here at ~0.2 µs per call (`GUEST-TOOLCHAINS.md`), the same as fuel, but
//!   it bounds wall-clock time, which is what holds a worker up.
//! - **Memory**: a per-store limiter built on `StoreLimits`
//!   ([`Limits::memory_bytes`]); a `memory.grow` past it fails, and the
//!   limiter remembers it so that the trap that usually follows is reported
//!   as "exceeded its memory cap" rather than as a bare `unreachable`.
//! - **Fuel**, optional ([`Limits::fuel`]): a deterministic instruction
//!   budget, for when the same input must fail the same way on every
//!   machine. Off by default: the epoch deadline already bounds time.
//!
//! Instances come from wasmtime's pooling allocator: slots are reserved once
//! and reused, so replacing an instance after a trap costs microseconds and
//! no `mmap`.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{Cache, CacheConfig, Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// What a filter failure does to the document (see `DESIGN.md`, Filters).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The document goes on unchanged, as if the filter had kept it.
    Pass,
    /// The document is dropped (counted and logged).
    Drop,
    /// The document goes to the dead-letter index with the error.
    ///
    /// The default: nothing is lost, and nothing that a failed filter should
    /// have changed (say, redacted) reaches the main index.
    #[default]
    DeadLetter,
}

impl Policy {
    /// The name used in flags, logs and the pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Pass => "pass",
            Policy::Drop => "drop",
            Policy::DeadLetter => "dead-letter",
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits of one filter. [`Settings::limits`] holds the global defaults;
/// a pipeline file will be able to override them per filter
/// ([`crate::filter::FilterSpec::limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one document may take (the `alloc`, `filter` and
    /// `dealloc` calls together).
    ///
    /// Default 5 ms. Measured filters take 0.3–7 µs per ~1 KB document
    /// (Rust, C, Zig, AssemblyScript, Go, QuickJS) and ~100 µs for the
    /// heaviest (SpiderMonkey JS), so 5 ms is 50× the slowest honest filter,
    /// while a stuck one costs its worker at most 5 ms per document.
    pub deadline: Duration,
    /// Wall-clock time to start an instance: instantiation (including a
    /// `start` function), `_initialize` and `init`.
    ///
    /// Default 1 s. It runs once per instance (at load, in each worker, and
    /// after each replacement); Go's runtime takes ~0.3 ms to start, and a
    /// filter may build tables from its config. 1 s still stops a hang.
    pub start_deadline: Duration,
    /// The most linear memory an instance may have, in bytes.
    ///
    /// Default 16 MiB. Rust, C, Zig and AssemblyScript filters start with
    /// about 1 MiB (the stack included) and a document is a few KB; 16 MiB
    /// leaves room for real work while workers × filters × 16 MiB stays
    /// within a pod's memory limit (8 workers × 4 filters = 512 MiB at
    /// worst). Large runtimes (Python, JS components) will need a per-filter
    /// override.
    pub memory_bytes: u64,
    /// After a call that leaves the instance's memory above this many bytes,
    /// the instance is replaced (wasm memories never shrink, so this is how
    /// a burst of allocation gives its memory back).
    ///
    /// Default 12 MiB (¾ of the cap): an instance that needs more than that
    /// for one document will soon fail at the cap mid-call, so it starts over
    /// before that happens; one that stays below is never churned.
    pub memory_watermark: u64,
    /// The largest result payload a filter may return, in bytes.
    ///
    /// Default 1 MiB. A Kubernetes object (an Event included) is at most
    /// ~1.5 MiB in etcd, and its Document is typically ~1 KB; a filter that
    /// returns more than 1 MiB is broken, and such documents would blow the
    /// sink's `--max-batch-bytes` one by one.
    pub max_output_bytes: u64,
    /// Fuel (about one unit per wasm instruction) per document; `None` (the
    /// default) meters nothing. Setting it globally turns fuel metering on
    /// for the engine.
    pub fuel: Option<u64>,
}

/// 1 MiB.
const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(5),
            start_deadline: Duration::from_secs(1),
            memory_bytes: 16 * MIB,
            memory_watermark: 12 * MIB,
            max_output_bytes: MIB,
            fuel: None,
        }
    }
}

/// What a filter's sandbox lets it see beyond its own memory.
///
/// Nothing by default. The pipeline file will grant these per filter; for now
/// they are global.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Real clocks through WASI `clock_time_get` (realtime and monotonic).
    /// Without it both clocks read 0 (frozen): nothing leaks, and runtimes
    /// that read the clock as they start (Go, Rust std) still run.
    pub clock: bool,
}

/// Process-wide settings of the filter runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How often the epoch advances: the resolution of every deadline.
    ///
    /// Default 1 ms, so that a 5 ms deadline means 5–6 ms. The ticker wakes
    /// 1,000 times a second to do one atomic increment: a few µs of CPU per
    /// millisecond, under 1% of one core.
    pub epoch_tick: Duration,
    /// Instance slots in the pool: the most instances alive at once.
    ///
    /// Default 1,000 (wasmtime's own default). One instance lives per worker
    /// and filter, twice that while a hot reload starts the new chain, plus
    /// one per filter while a chain loads; running out fails calls, so the
    /// margin is wide. Each slot reserves address space, not memory: 4 GiB
    /// plus guard pages (bounds checks are then free), ~4 TiB for 1,000.
    pub max_instances: u32,
    /// Directory for wasmtime's on-disk cache of compiled modules, keyed by
    /// module content and engine settings; `None` (the default) compiles at
    /// every start. Worth setting for guests that take seconds to compile.
    pub cache_dir: Option<PathBuf>,
    /// Default limits of every filter.
    pub limits: Limits,
    /// Default failure policy of every filter.
    pub policy: Policy,
    /// What every filter's sandbox grants.
    pub grants: Grants,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(1),
            max_instances: 1000,
            cache_dir: None,
            limits: Limits::default(),
            policy: Policy::default(),
            grants: Grants::default(),
        }
    }
}

/// The engine could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A setting is out of range.
    #[error("invalid filter runtime setting: {0}")]
    InvalidSetting(String),
    /// wasmtime refused the configuration (or the cache directory).
    #[error("cannot create the WebAssembly engine: {0}")]
    Wasmtime(String),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread")]
    Ticker(#[source] std::io::Error),
}

impl Limits {
    /// Checks that these limits make sense, for an engine with `settings`.
    pub fn validate(&self, settings: &Settings) -> Result<(), String> {
        if self.deadline < settings.epoch_tick {
            return Err(format!(
                "the deadline ({:?}) is shorter than the epoch tick ({:?})",
                self.deadline, settings.epoch_tick
            ));
        }
        if self.start_deadline < self.deadline {
            return Err("the start deadline is shorter than the per-call deadline".into());
        }
        if self.memory_bytes < 64 * 1024 {
            return Err("the memory cap is below one wasm page (64 KiB)".into());
        }
        if self.memory_watermark > self.memory_bytes {
            return Err("the memory watermark is above the memory cap".into());
        }
        if self.max_output_bytes == 0 {
            return Err("the output limit is 0".into());
        }
        if self.fuel.is_some() != settings.limits.fuel.is_some() {
            // Fuel metering is compiled into the code or not, engine-wide.
            return Err("fuel can only be set for every filter or for none".into());
        }
        Ok(())
    }
}

impl Settings {
    fn validate(&self) -> Result<(), EngineError> {
        let invalid = |s: String| Err(EngineError::InvalidSetting(s));
        if self.epoch_tick.is_zero() {
            return invalid("the epoch tick is 0".into());
        }
        if self.max_instances == 0 {
            return invalid("the instance pool has no slot".into());
        }
        self.limits.validate(self).or_else(invalid)
    }
}

/// The process's WebAssembly engine, with its epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    settings: std::sync::Arc<Settings>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Creates the engine and starts its epoch ticker.
    ///
    /// The ticker thread holds only a weak reference: it ends within one tick
    /// after the last clone of the engine (and every module, chain and
    /// instance made with it) is dropped.
    pub fn new(settings: Settings) -> Result<Engine, EngineError> {
        settings.validate()?;
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(settings.limits.fuel.is_some());
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(settings.max_instances)
            .total_memories(settings.max_instances)
            .total_tables(settings.max_instances);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &settings.cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            let cache = Cache::new(cache).map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
            config.cache(Some(cache));
        }
        let inner =
            wasmtime::Engine::new(&config).map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;

        let weak = inner.weak();
        let tick = settings.epoch_tick;
        std::thread::Builder::new()
            .name("kwex-filter-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(EngineError::Ticker)?;

        Ok(Engine {
            inner,
            settings: std::sync::Arc::new(settings),
        })
    }

    /// The settings this engine was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The wasmtime engine.
    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Whether compiled code meters fuel.
    pub(crate) fn meters_fuel(&self) -> bool {
        self.settings.limits.fuel.is_some()
    }

    /// The epoch deadline, in ticks from now, that gives a call at least
    /// `time`.
    ///
    /// The first tick may come right after the deadline is set, so one more
    /// tick than `time / tick` is needed to be sure of `time`; a call is thus
    /// stopped after between `time` and `time + tick` (plus scheduling delay).
    pub(crate) fn ticks(&self, time: Duration) -> u64 {
        let tick = self.settings.epoch_tick.as_nanos().max(1);
        let ticks = time.as_nanos().div_ceil(tick) + 1;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn small() -> Settings {
        Settings {
            max_instances: 4,
            ..Settings::default()
        }
    }

    #[test]
    fn a_deadline_is_never_shorter_than_asked() {
        let engine = Engine::new(small()).unwrap();
        assert_eq!(engine.ticks(Duration::from_millis(5)), 6);
        assert_eq!(engine.ticks(Duration::from_micros(4500)), 6);
        assert_eq!(engine.ticks(Duration::from_secs(1)), 1001);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let mut s = small();
        s.limits.memory_watermark = s.limits.memory_bytes + 1;
        assert!(matches!(
            Engine::new(s),
            Err(EngineError::InvalidSetting(_))
        ));
        let mut s = small();
        s.limits.deadline = Duration::from_micros(10);
        assert!(matches!(
            Engine::new(s),
            Err(EngineError::InvalidSetting(_))
        ));
        let mut s = small();
        s.max_instances = 0;
        assert!(matches!(
            Engine::new(s),
            Err(EngineError::InvalidSetting(_))
        ));
    }
}
