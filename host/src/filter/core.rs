//! Filters built as core modules: the ABI v1 call sequence of
//! `guest-sdk/ABI.md` on one live instance.
//!
//! Loading checks the exports (`abi::check_exports`) and imports
//! (`wasi::check_imports`) and links the preview 1 stubs; an [`Instance`]
//! then makes calls: `alloc`, copy the document in, `filter`, copy the
//! result out, `dealloc`.

use std::sync::Arc;

use wasmtime::{InstancePre, Linker, Memory, Module, Store, Trap, TypedFunc};

use crate::filter::abi::{self, Exports, RawVerdict};
use crate::filter::engine::{Engine, Grants};
use crate::filter::error::Failure;
use crate::filter::instance::{Budget, Limiter, Template, Unchecked, Verdict};
use crate::filter::log::LogLimit;
use crate::filter::wasi::{self, Wasi};

/// A core module, compiled, checked and linked.
pub(crate) struct Pre {
    pre: InstancePre<GuestState>,
    exports: Exports,
}

/// Compiles-checks-links a core module. `Err` lists every problem found, in
/// words, or the one error that stopped the check.
pub(crate) fn prepare(engine: &Engine, module: &Module) -> Result<Pre, Vec<String>> {
    let mut problems = Vec::new();
    let exports = abi::check_exports(module).unwrap_or_else(|p| {
        problems.extend(p);
        Exports::default()
    });
    problems.extend(wasi::check_imports(module));
    if !problems.is_empty() {
        return Err(problems);
    }
    let linked = |e: wasmtime::Error| vec![format!("it cannot be linked: {e:#}")];
    let mut linker = Linker::new(engine.wasmtime());
    wasi::add_to_linker(&mut linker).map_err(linked)?;
    let pre = linker.instantiate_pre(module).map_err(linked)?;
    Ok(Pre { pre, exports })
}

/// The host data of a core module's store.
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
            limiter: Limiter::new(memory_cap, 1),
            wasi: Wasi::new(filter, log, grants),
            memory: None,
        }
    }
}

/// A started core-module instance.
pub(crate) struct Instance {
    store: Store<GuestState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    dealloc: Option<TypedFunc<(i32, i32), ()>>,
    filter: TypedFunc<(i32, i32), i64>,
}

impl Instance {
    /// Instantiates, runs `_initialize` and then `init` with the config, all
    /// within the start deadline.
    pub(crate) fn start(t: &Template, pre: &Pre) -> Result<Instance, Failure> {
        let state = GuestState::new(
            t.name.clone(),
            t.output_log.clone(),
            t.grants.clone(),
            t.limits.memory_bytes,
        );
        let mut store = Store::new(t.engine.wasmtime(), state);
        store.limiter(|s| &mut s.limiter);
        let budget = Budget::start(t);
        budget.arm(&mut store, |s| &mut s.limiter)?;
        let classify =
            |store: &Store<GuestState>, e| budget.classify(store.data().limiter.refused, e);

        let instance = match pre.pre.instantiate(&mut store) {
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
        let dealloc = match pre.exports.dealloc {
            true => Some(
                instance
                    .get_typed_func::<(i32, i32), ()>(&mut store, "dealloc")
                    .map_err(|_| missing("dealloc"))?,
            ),
            false => None,
        };
        if pre.exports.initialize {
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
        };
        if pre.exports.init {
            let init = instance
                .get_typed_func::<(i32, i32), i64>(&mut this.store, "init")
                .map_err(|_| missing("init"))?;
            let same_deadline = Budget {
                ticks: None,
                ..budget
            };
            let copied = this.invoke(&init, t.config.as_bytes(), &same_deadline);
            this.store.data_mut().wasi.flush();
            match copied? {
                Unchecked::Keep => {}
                Unchecked::Error(message) => {
                    return Err(Failure::InitRejected(abi::message(&message)));
                }
                Unchecked::Drop => return Err(unknown_init(abi::DROP)),
                Unchecked::Replace(_) => return Err(unknown_init(abi::REPLACE)),
                Unchecked::Route { .. } => return Err(unknown_init(abi::ROUTE)),
            }
        }
        Ok(this)
    }

    /// Runs `filter` on one document and checks its answer.
    pub(crate) fn call(&mut self, t: &Template, document: &[u8]) -> Result<Verdict, Failure> {
        let budget = Budget::call(t);
        let filter = self.filter.clone();
        let copied = self.invoke(&filter, document, &budget);
        self.store.data_mut().wasi.flush();
        copied?.check(budget.max_output)
    }

    /// The size of the instance's memory now.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory.data_size(&self.store) as u64
    }

    /// The ABI's call sequence: `alloc`, copy the input in, call `func`,
    /// copy the result out, `dealloc` the input. One deadline (and one fuel
    /// budget) covers all of it.
    fn invoke(
        &mut self,
        func: &TypedFunc<(i32, i32), i64>,
        input: &[u8],
        budget: &Budget,
    ) -> Result<Unchecked, Failure> {
        let store = &mut self.store;
        budget.arm(store, |s| &mut s.limiter)?;
        let fail = |store: &Store<GuestState>, e| budget.classify(store.data().limiter.refused, e);

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
            RawVerdict::Keep => Unchecked::Keep,
            RawVerdict::Drop => Unchecked::Drop,
            RawVerdict::Replace(body) => Unchecked::Replace(body.to_vec()),
            RawVerdict::Route { index, body } => Unchecked::Route {
                index: index.to_vec(),
                body: body.map(<[u8]>::to_vec),
            },
            RawVerdict::Error(message) => Unchecked::Error(message.to_vec()),
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
