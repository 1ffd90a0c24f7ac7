//! A chain of filters, and the per-worker state that runs documents through
//! it.
//!
//! Loading ([`Chain::load`], [`Chain::from_specs`]) does everything that can
//! fail before the first document: read, check the header, compile, check
//! exports and imports, and start one instance of each filter (so `init`
//! sees its config and can refuse it). A [`Chain`] is then immutable and
//! shared; each worker thread gets a [`ChainWorker`] from [`Chain::worker`]
//! holding its own instances, and calls [`ChainWorker::apply`] per document.
//! A hot reload will build a new `Chain` off the hot path and hand workers
//! new `ChainWorker`s between documents.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::Module;
use wasmtime::component::Component;

use crate::document::Record;
use crate::filter::abi::{self, Format};
use crate::filter::engine::{Engine, Grants, Limits, Policy};
use crate::filter::error::{FilterError, LoadError};
use crate::filter::instance::{Code, Instance, Template, Verdict};
use crate::filter::log::LogLimit;
use crate::filter::metrics::{Counted, FilterMetrics, Metrics};
use crate::filter::pipeline_file::ChainSource;
use crate::filter::{component, core};

/// What the chain decided for a document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Send it on: the record as the last filter left it (its body replaced
    /// and its index routed as filters said).
    Keep(Record),
    /// A filter dropped it, or a filter failed under the `drop` policy.
    Drop,
    /// A filter failed under the `dead-letter` policy: the record as that
    /// filter received it (so the failure can be reproduced with that filter
    /// alone), and the error.
    DeadLetter(Record, FilterError),
}

/// One filter of a chain as configured: where it is and how it runs.
///
/// [`Chain::load`] makes these from a directory with the global defaults; a
/// pipeline file (later) will set each field per filter.
#[derive(Debug, Clone)]
pub struct FilterSpec {
    /// The `.wasm` file.
    pub path: PathBuf,
    /// The name in logs, errors and metric labels; the file name by default.
    pub name: String,
    /// The JSON given to the filter's `init`; `null` when it has none.
    pub config: serde_json::Value,
    /// What a failure does to the document.
    pub policy: Policy,
    /// Its limits.
    pub limits: Limits,
    /// What the sandbox grants it beyond nothing.
    pub grants: Grants,
}

impl FilterSpec {
    /// A spec for the filter at `path`, with the engine's default policy and
    /// limits, no config, and its file name as name.
    pub fn new(engine: &Engine, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self {
            path,
            name,
            config: serde_json::Value::Null,
            policy: engine.settings().policy,
            limits: engine.settings().limits.clone(),
            grants: engine.settings().grants.clone(),
        }
    }

    /// Sets the config handed to `init`.
    #[must_use]
    pub fn with_config(mut self, config: serde_json::Value) -> Self {
        self.config = config;
        self
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
}

/// A loaded filter, shared by the workers.
struct Loaded {
    template: Template,
    policy: Policy,
    metrics: FilterMetrics,
    /// Budget for failure log lines (separate from the guest's output).
    failure_log: LogLimit,
}

/// An ordered, loaded chain of filters. Cheap to clone; immutable.
#[derive(Clone)]
pub struct Chain {
    filters: Arc<[Loaded]>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|l| &*l.template.name))
            .finish()
    }
}

impl Chain {
    /// Loads the chain `--filters` points at: a pipeline file, a directory
    /// with a `pipeline.yaml`, or a directory of `*.wasm` files run in
    /// lexical (byte) order of file name with the engine's defaults (see
    /// [`ChainSource`]).
    ///
    /// Name files with zero-padded prefixes (`10-drop-normal.wasm`,
    /// `20-redact.wasm`) to order them. An empty directory is an empty
    /// chain, which keeps every document.
    pub fn load(engine: &Engine, path: &Path, metrics: &Metrics) -> Result<Chain, LoadError> {
        let specs = ChainSource::at(path).specs(engine)?;
        Chain::from_specs(engine, specs, metrics)
    }

    /// Loads the filters of `specs`, in that order.
    pub fn from_specs(
        engine: &Engine,
        specs: Vec<FilterSpec>,
        metrics: &Metrics,
    ) -> Result<Chain, LoadError> {
        let mut filters = Vec::with_capacity(specs.len());
        for spec in specs {
            if filters
                .iter()
                .any(|l: &Loaded| *l.template.name == *spec.name)
            {
                return Err(LoadError::DuplicateName { name: spec.name });
            }
            filters.push(load_one(engine, spec, metrics)?);
        }
        Ok(Chain {
            filters: filters.into(),
        })
    }

    /// The filters' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().map(|l| &*l.template.name)
    }

    /// The ABI of the filter at `position`, in words.
    pub fn abi(&self, position: usize) -> Option<&'static str> {
        self.filters.get(position).map(|l| l.template.code.abi())
    }

    /// Whether the chain has no filter (and so keeps every document as is).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// State for one worker thread: its own instance of each filter, started
    /// on the worker's first document.
    pub fn worker(&self) -> ChainWorker {
        ChainWorker {
            chain: self.clone(),
            instances: self.filters.iter().map(|_| None).collect(),
        }
    }
}

fn load_one(engine: &Engine, spec: FilterSpec, metrics: &Metrics) -> Result<Loaded, LoadError> {
    let name = spec.name;
    spec.limits
        .validate(engine.settings())
        .map_err(|reason| LoadError::Limits {
            name: name.clone(),
            reason,
        })?;
    let bytes = std::fs::read(&spec.path).map_err(|source| LoadError::Read {
        path: spec.path.clone(),
        source,
    })?;
    let code = compile(engine, &name, &bytes)?;
    let config = serde_json::to_string(&spec.config).unwrap_or_else(|_| "null".to_owned());

    let name: Arc<str> = name.into();
    let template = Template {
        name: name.clone(),
        code,
        config,
        limits: spec.limits,
        grants: spec.grants,
        // Guest output: 20 lines at once, then 5 a second, per filter.
        output_log: Arc::new(LogLimit::new(20, 5)),
        engine: engine.clone(),
    };
    // Start one instance now, so that a filter that cannot start (or whose
    // init refuses its config) fails the load, not every document.
    let first = Instance::start(&template).map_err(|failure| LoadError::Start {
        name: name.to_string(),
        failure,
    })?;
    // An instance that starts above the watermark would be replaced after
    // every call (a Python component needs ~14 MiB before its first
    // document): slow and silent, so refused here with the fix.
    if first.above_watermark(&template) {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        return Err(LoadError::Limits {
            name: name.to_string(),
            reason: format!(
                "it starts with {:.1} MiB of memory, above its {:.1} MiB watermark (¾ of its \
                 {:.0} MiB memory limit), so it would be replaced after every call; give it more \
                 memory (`limits: {{memory: 64MiB}}` in the pipeline file, or --filter-memory)",
                mib(first.memory_bytes()),
                mib(template.limits.memory_watermark),
                mib(template.limits.memory_bytes),
            ),
        });
    }
    Ok(Loaded {
        template,
        policy: spec.policy,
        metrics: metrics.filter(&name),
        // Failures: 10 lines at once, then 1 a second, per filter.
        failure_log: LogLimit::new(10, 1),
    })
}

/// Compiles a filter of either ABI (told apart by its header) and checks
/// and links it.
pub(crate) fn compile(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Code, LoadError> {
    let compiled = |e: wasmtime::Error| LoadError::Compile {
        name: name.to_owned(),
        message: format!("{e:#}"),
    };
    let refused = |problems| LoadError::Refused {
        name: name.to_owned(),
        problems,
    };
    match abi::format(bytes) {
        Format::CoreModule => {
            let module = Module::new(engine.wasmtime(), bytes).map_err(compiled)?;
            core::prepare(engine, &module)
                .map(Code::Core)
                .map_err(refused)
        }
        Format::Component => {
            let component = Component::new(engine.wasmtime(), bytes).map_err(compiled)?;
            component::prepare(engine, &component)
                .map(Code::Component)
                .map_err(refused)
        }
        Format::Unknown => Err(LoadError::NotWasm {
            name: name.to_owned(),
        }),
    }
}

/// One worker's instances of a chain's filters. Not shared: a worker thread
/// owns one and passes documents through it one at a time.
pub struct ChainWorker {
    chain: Chain,
    /// One slot per filter; `None` until first use or after a replacement.
    instances: Vec<Option<Instance>>,
}

impl std::fmt::Debug for ChainWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainWorker")
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl ChainWorker {
    /// The chain this worker runs.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Runs `record` through every filter, in order.
    ///
    /// `keep` passes it on unchanged, `replace` swaps its body, `route` sets
    /// its index (and body, if given), `drop` ends the chain. When a filter
    /// fails, its policy decides: `pass` goes on with the record as that
    /// filter received it, `drop` and `dead-letter` end the chain. Failures
    /// never panic and never stop the worker.
    pub fn apply(&mut self, mut record: Record) -> Outcome {
        let ChainWorker { chain, instances } = self;
        for (filter, slot) in chain.filters.iter().zip(instances.iter_mut()) {
            match call(filter, slot, &record.body) {
                Ok(Verdict::Keep) => {}
                Ok(Verdict::Drop) => return Outcome::Drop,
                Ok(Verdict::Replace(body)) => record.body = body,
                Ok(Verdict::Route { index, body }) => {
                    record.index = index;
                    if let Some(body) = body {
                        record.body = body;
                    }
                }
                Err(error) => {
                    if let Some(suppressed) = filter.failure_log.allow() {
                        tracing::warn!(
                            filter = %error.filter,
                            kind = %error.kind(),
                            policy = %filter.policy,
                            id = %record.id,
                            suppressed,
                            error = %error,
                            "Filter failed; its failure policy applies."
                        );
                    }
                    match filter.policy {
                        Policy::Pass => {}
                        Policy::Drop => return Outcome::Drop,
                        Policy::DeadLetter => return Outcome::DeadLetter(record, error),
                    }
                }
            }
        }
        Outcome::Keep(record)
    }
}

impl ChainWorker {
    /// Runs the filter at `position` of the chain on `document` and returns
    /// its answer, unapplied: for `kwex filter test` and `bench`, which
    /// report what a filter said rather than what the chain did with it.
    /// Instances and metrics are handled as in [`apply`](Self::apply).
    pub fn call(
        &mut self,
        position: usize,
        document: &[u8],
    ) -> Option<Result<Verdict, FilterError>> {
        let filter = self.chain.filters.get(position)?;
        let slot = self.instances.get_mut(position)?;
        Some(call(filter, slot, document))
    }
}

/// One call of one filter, with its instance management and metrics.
fn call(
    filter: &Loaded,
    slot: &mut Option<Instance>,
    document: &[u8],
) -> Result<Verdict, FilterError> {
    let m = &filter.metrics;
    let t = &filter.template;
    let started = Instant::now();
    m.calls.inc();
    let result = run(t, slot, document, &m.replacements);
    m.duration.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(verdict) => {
            m.verdict(match verdict {
                Verdict::Keep => Counted::Keep,
                Verdict::Drop => Counted::Drop,
                Verdict::Replace(_) => Counted::Replace,
                Verdict::Route { .. } => Counted::Route,
            });
            Ok(verdict)
        }
        Err(failure) => {
            m.error(failure.kind());
            Err(FilterError {
                filter: t.name.clone(),
                failure,
            })
        }
    }
}

/// Starts an instance if the slot is empty, calls it, and empties the slot
/// if the instance can no longer be trusted.
fn run(
    t: &Template,
    slot: &mut Option<Instance>,
    document: &[u8],
    replacements: &prometheus::IntCounter,
) -> Result<Verdict, crate::filter::error::Failure> {
    if slot.is_none() {
        *slot = Some(Instance::start(t)?);
    }
    let instance = slot
        .as_mut()
        .ok_or_else(|| crate::filter::error::Failure::Instantiate("no instance".into()))?;
    let result = instance.call(t, document);
    let keep_instance = match &result {
        Ok(_) => !instance.above_watermark(t),
        Err(failure) => failure.keeps_instance(),
    };
    if !keep_instance {
        *slot = None;
        replacements.inc();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn a_chain_is_shared_and_a_worker_moves_to_its_thread() {
        assert_send_sync::<Chain>();
        assert_send::<ChainWorker>();
    }
}
