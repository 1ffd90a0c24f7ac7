//! One live instance of a filter, whichever its ABI, and what both ABIs
//! share: the template instances are made from, the memory limiter, the
//! budget of a call, the checks on an answer, and the naming of failures.
//!
//! An instance is reused for every document its worker handles (never one
//! per event: instantiating costs 10–20 µs for a small guest and up to
//! 0.8 ms for Go or Python, a reused call under 1 µs). Guest state therefore
//! persists across calls: a filter may keep a rate limiter or a cache. That
//! state is per worker instance (each worker has its own) and is lost
//! whenever the instance is replaced, which happens after a trap, a timeout,
//! any answer that breaks the ABI, or a call that leaves memory above the
//! watermark.
//!
//! Each instance has its own `Store`: a store frees its instances only when
//! it is dropped, so replacing an instance is dropping its store. The ABIs
//! themselves live in `core` (core modules) and `component` (components).

use std::sync::Arc;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder, Trap};

use crate::filter::abi;
use crate::filter::component;
use crate::filter::core;
use crate::filter::engine::{Engine, Grants, Limits};
use crate::filter::error::Failure;
use crate::filter::log::LogLimit;
use crate::filter::wasi::ProcExit;

/// What an instance is made from: shared by every worker's instance of one
/// filter.
pub(crate) struct Template {
    pub(crate) name: Arc<str>,
    pub(crate) code: Code,
    /// The config handed to `init`, as JSON text.
    pub(crate) config: String,
    pub(crate) limits: Limits,
    pub(crate) grants: Grants,
    pub(crate) output_log: Arc<LogLimit>,
    pub(crate) engine: Engine,
}

/// The compiled, linked filter, ready to instantiate.
pub(crate) enum Code {
    /// A core module (`guest-sdk/ABI.md`).
    Core(core::Pre),
    /// A component of the `kwex:filter` world (`guest-sdk/wit/`).
    Component(component::Pre),
}

impl Code {
    /// The ABI's name, for `kwex filter inspect` and logs.
    pub(crate) fn abi(&self) -> &'static str {
        match self {
            Code::Core(_) => "core module ABI v1",
            Code::Component(_) => "component, world kwex:filter/filter@1.0.0",
        }
    }
}

/// A filter's answer to one document, after every check (size, UTF-8, one
/// JSON object, index-name rules): safe to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on unchanged.
    Keep,
    /// Do not export it.
    Drop,
    /// Pass on this JSON object instead.
    Replace(bytes::Bytes),
    /// Write it to `index`, with `body` if given.
    Route {
        /// The new target index.
        index: String,
        /// The new document, if any.
        body: Option<bytes::Bytes>,
    },
}

/// A verdict as it left the guest, before its contents are checked.
pub(crate) enum Unchecked {
    Keep,
    Drop,
    Replace(Vec<u8>),
    Route {
        index: Vec<u8>,
        body: Option<Vec<u8>>,
    },
    Error(Vec<u8>),
}

impl Unchecked {
    /// Checks everything before it leaves the sandbox: output size, UTF-8,
    /// one JSON object, index-name rules. A guest's own error becomes
    /// [`Failure::Reported`].
    pub(crate) fn check(self, max_output: u64) -> Result<Verdict, Failure> {
        let size = |body: &[u8]| -> Result<(), Failure> {
            let len = body.len() as u64;
            match len > max_output {
                true => Err(Failure::OutputTooLarge {
                    len,
                    limit: max_output,
                }),
                false => Ok(()),
            }
        };
        match self {
            Unchecked::Keep => Ok(Verdict::Keep),
            Unchecked::Drop => Ok(Verdict::Drop),
            Unchecked::Replace(body) => {
                size(&body)?;
                abi::document(&body)?;
                Ok(Verdict::Replace(body.into()))
            }
            Unchecked::Route { index, body } => {
                let index = abi::index(&index)?;
                let body = match body {
                    Some(body) => {
                        size(&body)?;
                        abi::document(&body)?;
                        Some(body.into())
                    }
                    None => None,
                };
                Ok(Verdict::Route { index, body })
            }
            Unchecked::Error(message) => Err(Failure::Reported(abi::message(&message))),
        }
    }
}

/// A started instance.
pub(crate) enum Instance {
    Core(core::Instance),
    Component(component::Instance),
}

impl Instance {
    /// Instantiates and initializes (`_initialize`, then `init` with the
    /// config), all within the start deadline.
    pub(crate) fn start(t: &Template) -> Result<Instance, Failure> {
        match &t.code {
            Code::Core(pre) => core::Instance::start(t, pre).map(Instance::Core),
            Code::Component(pre) => component::Instance::start(t, pre).map(Instance::Component),
        }
    }

    /// Runs the filter on one document and checks its answer.
    pub(crate) fn call(&mut self, t: &Template, document: &[u8]) -> Result<Verdict, Failure> {
        match self {
            Instance::Core(i) => i.call(t, document),
            Instance::Component(i) => i.call(t, document),
        }
    }

    /// Whether the last call left memory above the watermark.
    pub(crate) fn above_watermark(&self, t: &Template) -> bool {
        self.memory_bytes() > t.limits.memory_watermark
    }

    /// The instance's memory now (all its linear memories).
    pub(crate) fn memory_bytes(&self) -> u64 {
        match self {
            Instance::Core(i) => i.memory_bytes(),
            Instance::Component(i) => i.memory_bytes(),
        }
    }
}

/// `StoreLimits`, plus a note of whether it refused to grow a memory (so that
/// the trap a refused allocation usually ends in is reported as what it is),
/// and the bytes of memory the store holds in all.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: StoreLimits,
    pub(crate) refused: bool,
    /// Sum of the sizes of every memory of the store, as grown through this
    /// limiter (creation counts as growing from 0).
    pub(crate) memory_bytes: u64,
}

impl Limiter {
    /// Limits for one store: `memory_cap` bytes per linear memory, and at
    /// most `instances` core instances and memories (a core module has one
    /// of each; a component links several core modules, e.g. its own and the
    /// WASI adapter's).
    pub(crate) fn new(memory_cap: u64, instances: usize) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(memory_cap).unwrap_or(usize::MAX))
                .instances(instances)
                .memories(instances)
                .tables(instances)
                .build(),
            refused: false,
            memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current) as u64;
        } else {
            self.refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The bounds of one guest call.
pub(crate) struct Budget {
    /// For messages.
    pub(crate) deadline: std::time::Duration,
    /// The same, in epoch ticks from now; `None` keeps the deadline already
    /// set (so that instantiation, `_initialize` and `init` share one).
    pub(crate) ticks: Option<u64>,
    pub(crate) fuel: Option<u64>,
    pub(crate) memory_cap: u64,
    pub(crate) max_output: u64,
}

impl Budget {
    /// The budget of one document.
    pub(crate) fn call(t: &Template) -> Self {
        Self::new(t, t.limits.deadline, t.limits.fuel)
    }

    /// The budget of starting an instance: bounded by its own deadline; fuel
    /// is a per-document budget, so starting gets as much as it wants.
    pub(crate) fn start(t: &Template) -> Self {
        Self::new(
            t,
            t.limits.start_deadline,
            t.engine.meters_fuel().then_some(u64::MAX),
        )
    }

    fn new(t: &Template, deadline: std::time::Duration, fuel: Option<u64>) -> Self {
        Self {
            deadline,
            ticks: Some(t.engine.ticks(deadline)),
            fuel,
            memory_cap: t.limits.memory_bytes,
            max_output: t.limits.max_output_bytes,
        }
    }

    /// Sets the deadline and fuel on a store before a call, and clears the
    /// limiter's note of a refused allocation.
    pub(crate) fn arm<T>(
        &self,
        store: &mut wasmtime::Store<T>,
        limiter: impl FnOnce(&mut T) -> &mut Limiter,
    ) -> Result<(), Failure> {
        if let Some(ticks) = self.ticks {
            store.set_epoch_deadline(ticks);
        }
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        }
        limiter(store.data_mut()).refused = false;
        Ok(())
    }

    /// Turns a wasmtime error from a guest call into what happened, in
    /// words. `refused` is whether the limiter refused to grow a memory
    /// during the call.
    pub(crate) fn classify(&self, refused: bool, error: wasmtime::Error) -> Failure {
        if let Some(exit) = error.downcast_ref::<ProcExit>() {
            return Failure::Exit(exit.0);
        }
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Failure::Exit(exit.0);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Failure::Timeout(self.deadline),
            Some(Trap::OutOfFuel) => Failure::OutOfFuel(self.fuel.unwrap_or(0)),
            _ if refused => Failure::Memory(self.memory_cap),
            // Displayed as "wasm trap: wasm `unreachable` …"; "trapped: " says it once.
            Some(trap) => Failure::Trap(
                trap.to_string()
                    .trim_start_matches("wasm trap: ")
                    .to_owned(),
            ),
            None => Failure::Trap(format!("{error:#}")),
        }
    }
}
