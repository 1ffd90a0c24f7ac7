//! One live instance of a filter: a wasmtime store with its limits, and the
//! calls of the ABI made on it.
//!
//! An instance is reused for every document its worker handles (never one
//! per event: instantiating costs 10–20 µs for a small guest and up to
//! 0.8 ms for Go, a reused call under 1 µs). Guest state therefore persists
//! across calls: a filter may keep a rate limiter or a cache. That state is
//! per worker instance (each worker has its own) and is lost whenever the
//! instance is replaced, which happens after a trap, a timeout, any answer
//! that breaks the ABI, or a call that leaves memory above the watermark.
//!
//! Each instance has its own [`Store`]: a store frees its instances only when
//! it is dropped, so replacing an instance is dropping its store.

use std::sync::Arc;

use wasmtime::{
    InstancePre, Memory, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc,
};

use crate::filter::abi::{self, Exports, RawVerdict};
use crate::filter::engine::{Engine, Grants, Limits};
use crate::filter::error::Failure;
use crate::filter::log::LogLimit;
use crate::filter::wasi::{ProcExit, Wasi};

/// The host data of a store.
#[derive(Debug)]
pub(crate) struct GuestState {
    pub(crate) limiter: Limiter,
    pub(crate) wasi: Wasi,
    /// The instance's exported memory, once instantiated: WASI functions use
    /// it rather than looking the export up by name on every call.
    pub(crate) memory: Option<Memory>,
}

impl GuestState {
    pub(crate) fn new(
        filter: Arc<str>,
        log: Arc<LogLimit>,
        grants: Grants,
        memory_cap: u64,
    ) -> Self {
        Self {
            limiter: Limiter::new(memory_cap),
            wasi: Wasi::new(filter, log, grants),
            memory: None,
        }
    }
}

/// `StoreLimits`, plus a note of whether it refused to grow the memory, so
/// that the trap a refused allocation usually ends in is reported as what it
/// is.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: StoreLimits,
    refused: bool,
}

impl Limiter {
    fn new(memory_cap: u64) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(memory_cap).unwrap_or(usize::MAX))
                .instances(1)
                .memories(1)
                .build(),
            refused: false,
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
        if !allowed {
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

/// What an instance is made from: shared by every worker's instance of one
/// filter.
pub(crate) struct Template {
    pub(crate) name: Arc<str>,
    pub(crate) pre: InstancePre<GuestState>,
    pub(crate) exports: Exports,
    pub(crate) config: Vec<u8>,
    pub(crate) limits: Limits,
    pub(crate) grants: Grants,
    pub(crate) output_log: Arc<LogLimit>,
    pub(crate) engine: Engine,
}

/// A verdict that passed every check: safe to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    Drop,
    Replace(bytes::Bytes),
    Route {
        index: String,
        body: Option<bytes::Bytes>,
    },
}

/// A verdict as copied out of guest memory, before its contents are checked.
enum Copied {
    Keep,
    Drop,
    Replace(Vec<u8>),
    Route {
        index: Vec<u8>,
        body: Option<Vec<u8>>,
    },
    Error(Vec<u8>),
}

/// The bounds of one guest call.
struct Budget {
    /// For messages.
    deadline: std::time::Duration,
    /// The same, in epoch ticks from now; `None` keeps the deadline already
    /// set (so that instantiation, `_initialize` and `init` share one).
    ticks: Option<u64>,
    fuel: Option<u64>,
    memory_cap: u64,
    max_output: u64,
}

impl Budget {
    fn new(t: &Template, deadline: std::time::Duration, fuel: Option<u64>) -> Self {
        Self {
            deadline,
            ticks: Some(t.engine.ticks(deadline)),
            fuel,
            memory_cap: t.limits.memory_bytes,
            max_output: t.limits.max_output_bytes,
        }
    }
}

/// A started instance.
pub(crate) struct Instance {
    store: Store<GuestState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    dealloc: Option<TypedFunc<(i32, i32), ()>>,
    filter: TypedFunc<(i32, i32), i64>,
    watermark: u64,
}

impl Instance {
    /// Instantiates, runs `_initialize` and then `init` with the config, all
    /// within the start deadline.
    pub(crate) fn start(t: &Template) -> Result<Instance, Failure> {
        let state = GuestState::new(
            t.name.clone(),
            t.output_log.clone(),
            t.grants.clone(),
            t.limits.memory_bytes,
        );
        let mut store = Store::new(t.engine.wasmtime(), state);
        store.limiter(|s| &mut s.limiter);
        // Starting is bounded by its own deadline; fuel is a per-document
        // budget, so starting gets as much as it wants.
        let budget = Budget::new(
            t,
            t.limits.start_deadline,
            t.engine.meters_fuel().then_some(u64::MAX),
        );
        if let Some(ticks) = budget.ticks {
            store.set_epoch_deadline(ticks);
        }
        if let Some(fuel) = budget.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        }
        let classify = |store: &Store<GuestState>, e| classify(store, &budget, e);

        let instance = match t.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) if e.is::<Trap>() || store.data().limiter.refused => {
                return Err(classify(&store, e));
            }
            Err(e) => return Err(Failure::Instantiate(format!("{e:#}"))),
        };
        // The exports were checked at load; failing to find them now would
        // be a bug, reported rather than panicked on.
        let missing = |what: &str| Failure::Instantiate(format!("export `{what}` vanished"));
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| missing("memory"))?;
        store.data_mut().memory = Some(memory);
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "alloc")
            .map_err(|_| missing("alloc"))?;
        let filter = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "filter")
            .map_err(|_| missing("filter"))?;
        let dealloc = match t.exports.dealloc {
            true => Some(
                instance
                    .get_typed_func::<(i32, i32), ()>(&mut store, "dealloc")
                    .map_err(|_| missing("dealloc"))?,
            ),
            false => None,
        };
        if t.exports.initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut store, "_initialize")
                .map_err(|_| missing("_initialize"))?;
            init.call(&mut store, ()).map_err(|e| classify(&store, e))?;
        }
        let mut this = Instance {
            store,
            memory,
            alloc,
            dealloc,
            filter,
            watermark: t.limits.memory_watermark,
        };
        if t.exports.init {
            let init = instance
                .get_typed_func::<(i32, i32), i64>(&mut this.store, "init")
                .map_err(|_| missing("init"))?;
            let same_deadline = Budget {
                ticks: None,
                ..budget
            };
            let copied = this.invoke(&init, &t.config, &same_deadline);
            this.store.data_mut().wasi.flush();
            match copied? {
                Copied::Keep => {}
                Copied::Error(message) => {
                    return Err(Failure::InitRejected(abi::message(&message)));
                }
                Copied::Drop => return Err(unknown_init(abi::DROP)),
                Copied::Replace(_) => return Err(unknown_init(abi::REPLACE)),
                Copied::Route { .. } => return Err(unknown_init(abi::ROUTE)),
            }
        }
        Ok(this)
    }

    /// Runs `filter` on one document and checks its answer.
    pub(crate) fn call(&mut self, t: &Template, document: &[u8]) -> Result<Verdict, Failure> {
        let budget = Budget::new(t, t.limits.deadline, t.limits.fuel);
        let filter = self.filter.clone();
        let copied = self.invoke(&filter, document, &budget);
        self.store.data_mut().wasi.flush();
        match copied? {
            Copied::Keep => Ok(Verdict::Keep),
            Copied::Drop => Ok(Verdict::Drop),
            Copied::Replace(body) => {
                abi::document(&body)?;
                Ok(Verdict::Replace(body.into()))
            }
            Copied::Route { index, body } => {
                let index = abi::index(&index)?;
                let body = match body {
                    Some(body) => {
                        abi::document(&body)?;
                        Some(body.into())
                    }
                    None => None,
                };
                Ok(Verdict::Route { index, body })
            }
            Copied::Error(message) => Err(Failure::Reported(abi::message(&message))),
        }
    }

    /// Whether the last call left memory above the watermark.
    pub(crate) fn above_watermark(&self) -> bool {
        self.memory.data_size(&self.store) as u64 > self.watermark
    }

    /// The ABI's call sequence: `alloc`, copy the input in, call `func`,
    /// copy the result out, `dealloc` the input. One deadline (and one fuel
    /// budget) covers all of it.
    fn invoke(
        &mut self,
        func: &TypedFunc<(i32, i32), i64>,
        input: &[u8],
        budget: &Budget,
    ) -> Result<Copied, Failure> {
        let store = &mut self.store;
        if let Some(ticks) = budget.ticks {
            store.set_epoch_deadline(ticks);
        }
        if let Some(fuel) = budget.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        }
        store.data_mut().limiter.refused = false;
        let fail = |store: &Store<GuestState>, e| classify(store, budget, e);

        let len = input.len();
        let len32 = i32::try_from(len).map_err(|_| Failure::AllocFailed(len as u64))?;
        let ptr = self
            .alloc
            .call(&mut *store, len32)
            .map_err(|e| fail(store, e))?;
        if ptr == 0 {
            return Err(match store.data().limiter.refused {
                true => Failure::Memory(budget.memory_cap),
                false => Failure::AllocFailed(len as u64),
            });
        }
        let memory_size = self.memory.data_size(&*store) as u64;
        self.memory
            .write(&mut *store, ptr as u32 as usize, input)
            .map_err(|_| Failure::OutOfBounds {
                what: "alloc",
                ptr: ptr as u32,
                len: len as u32,
                memory: memory_size,
            })?;

        let packed = func
            .call(&mut *store, (ptr, len32))
            .map_err(|e| fail(store, e))?;
        let (out_ptr, out_len) = abi::unpack(packed);
        let data = self.memory.data(&*store);
        let start = out_ptr as usize;
        let Some(result) = start
            .checked_add(out_len as usize)
            .and_then(|end| data.get(start..end))
        else {
            return Err(Failure::OutOfBounds {
                what: "result",
                ptr: out_ptr,
                len: out_len,
                memory: data.len() as u64,
            });
        };
        let payload_len = u64::from(out_len.saturating_sub(1));
        if payload_len > budget.max_output {
            return Err(Failure::OutputTooLarge {
                len: payload_len,
                limit: budget.max_output,
            });
        }
        // Copy before anything else runs in the instance: the result is only
        // guaranteed until the next call into it (dealloc included).
        let copied = match abi::decode(result)? {
            RawVerdict::Keep => Copied::Keep,
            RawVerdict::Drop => Copied::Drop,
            RawVerdict::Replace(body) => Copied::Replace(body.to_vec()),
            RawVerdict::Route { index, body } => Copied::Route {
                index: index.to_vec(),
                body: body.map(<[u8]>::to_vec),
            },
            RawVerdict::Error(message) => Copied::Error(message.to_vec()),
        };
        if let Some(dealloc) = &self.dealloc {
            dealloc
                .call(&mut *store, (ptr, len32))
                .map_err(|e| fail(store, e))?;
        }
        Ok(copied)
    }
}

/// `init` answered with a verdict it may not use.
fn unknown_init(code: u8) -> Failure {
    Failure::UnknownVerdict {
        code,
        context: "init",
    }
}

/// Turns a wasmtime error from a guest call into what happened, in words.
fn classify(store: &Store<GuestState>, budget: &Budget, error: wasmtime::Error) -> Failure {
    if let Some(exit) = error.downcast_ref::<ProcExit>() {
        return Failure::Exit(exit.0);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout(budget.deadline),
        Some(Trap::OutOfFuel) => Failure::OutOfFuel(budget.fuel.unwrap_or(0)),
        _ if store.data().limiter.refused => Failure::Memory(budget.memory_cap),
        // Displayed as "wasm trap: wasm `unreachable` …"; "trapped: " says it once.
        Some(trap) => Failure::Trap(
            trap.to_string()
                .trim_start_matches("wasm trap: ")
                .to_owned(),
        ),
        None => Failure::Trap(format!("{error:#}")),
    }
}
