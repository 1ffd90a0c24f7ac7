//! WASI preview 1, granting nothing, in ~300 lines instead of a dependency.
//!
//! Most toolchains import WASI even for a pure function (Rust's std on
//! wasip1 imports `fd_write`, `environ_*`, `random_get` and `proc_exit`; Go
//! imports thirty-odd functions). A filter must load with those imports, but
//! it gets nothing from them: no files, no sockets, no environment, no
//! arguments, no clock unless granted. `wasmtime-wasi` would give a complete
//! implementation, then need configuring down to nothing; it is also another
//! large crate to compile. What is needed here is small:
//!
//! | Functions | Behaviour |
//! |---|---|
//! | `fd_write` on 1 and 2 | captured, split into lines, logged with the filter's name (rate-limited) |
//! | `fd_read` on 0 | end of file |
//! | `fd_fdstat_get`, `fd_fdstat_set_flags` on 0–2 | a character device; flags accepted |
//! | `args_*`, `environ_*` | empty |
//! | `clock_time_get`, `clock_res_get` | standing still at 1 s unless [`Grants::clock`] |
//! | `random_get` | random bytes (not for cryptography) |
//! | `proc_exit` | ends the call with a trap naming the exit code |
//! | `sched_yield` | success |
//! | everything else (files, paths, sockets, `poll_oneoff`, `proc_raise`) | an errno: `EBADF` (no such descriptor exists), `ENOTSUP` or `ENOSYS` |
//!
//! Every function of `wasi_snapshot_preview1` is defined, with its exact
//! signature, so any module built for wasip1 links; an import that is not one
//! of them (or has the wrong signature), or from any other module, is refused
//! at load with its name.

use std::time::{Instant, SystemTime};

use wasmtime::{Caller, ExternType, FuncType, Linker, Module, Val, ValType};

use crate::filter::abi::{Sig, Ty, describe};
use crate::filter::core::GuestState;
use crate::filter::engine::Grants;
use crate::filter::log::{GuestOutput, LogLimit, Stream};

/// The import module name of WASI preview 1.
pub(crate) const MODULE: &str = "wasi_snapshot_preview1";

/// Both clocks when the clock is not granted: one second, standing still
/// (`1970-01-01T00:00:01Z` for the wall clock).
pub(crate) const FROZEN_NANOS: u128 = 1_000_000_000;

// Errno values from the WASI preview 1 witx.
const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOSYS: i32 = 52;
const NOTSUP: i32 = 58;

/// Most bytes one `fd_write` call consumes. Host functions are not
/// interrupted by the epoch deadline, so a guest must not be able to make one
/// call copy its whole memory many times over; a larger write is a short
/// write, and the guest's retry runs in wasm, under the deadline.
const MAX_WRITE: usize = 64 * 1024;

/// How a function behaves.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Implemented below with `func_wrap`.
    Implemented,
    /// Returns this errno, touching nothing.
    Errno(i32),
}

use Behaviour::{Errno, Implemented};
use Ty::{I32, I64};

macro_rules! sig {
    ($($p:expr),*) => {
        Sig { params: &[$($p),*], results: &[I32] }
    };
}

/// Every function of WASI preview 1 (from the witx, as the `wasi` crate
/// 0.11 declares them), with its signature and behaviour here.
const FUNCTIONS: &[(&str, Sig, Behaviour)] = &[
    ("args_get", sig!(I32, I32), Implemented),
    ("args_sizes_get", sig!(I32, I32), Implemented),
    ("environ_get", sig!(I32, I32), Implemented),
    ("environ_sizes_get", sig!(I32, I32), Implemented),
    ("clock_res_get", sig!(I32, I32), Implemented),
    ("clock_time_get", sig!(I32, I64, I32), Implemented),
    ("fd_advise", sig!(I32, I64, I64, I32), Errno(BADF)),
    ("fd_allocate", sig!(I32, I64, I64), Errno(BADF)),
    ("fd_close", sig!(I32), Errno(BADF)),
    ("fd_datasync", sig!(I32), Errno(BADF)),
    ("fd_fdstat_get", sig!(I32, I32), Implemented),
    ("fd_fdstat_set_flags", sig!(I32, I32), Implemented),
    ("fd_fdstat_set_rights", sig!(I32, I64, I64), Errno(BADF)),
    ("fd_filestat_get", sig!(I32, I32), Errno(BADF)),
    ("fd_filestat_set_size", sig!(I32, I64), Errno(BADF)),
    (
        "fd_filestat_set_times",
        sig!(I32, I64, I64, I32),
        Errno(BADF),
    ),
    ("fd_pread", sig!(I32, I32, I32, I64, I32), Errno(BADF)),
    ("fd_prestat_get", sig!(I32, I32), Errno(BADF)),
    ("fd_prestat_dir_name", sig!(I32, I32, I32), Errno(BADF)),
    ("fd_pwrite", sig!(I32, I32, I32, I64, I32), Errno(BADF)),
    ("fd_read", sig!(I32, I32, I32, I32), Implemented),
    ("fd_readdir", sig!(I32, I32, I32, I64, I32), Errno(BADF)),
    ("fd_renumber", sig!(I32, I32), Errno(BADF)),
    ("fd_seek", sig!(I32, I64, I32, I32), Errno(BADF)),
    ("fd_sync", sig!(I32), Errno(BADF)),
    ("fd_tell", sig!(I32, I32), Errno(BADF)),
    ("fd_write", sig!(I32, I32, I32, I32), Implemented),
    ("path_create_directory", sig!(I32, I32, I32), Errno(BADF)),
    (
        "path_filestat_get",
        sig!(I32, I32, I32, I32, I32),
        Errno(BADF),
    ),
    (
        "path_filestat_set_times",
        sig!(I32, I32, I32, I32, I64, I64, I32),
        Errno(BADF),
    ),
    (
        "path_link",
        sig!(I32, I32, I32, I32, I32, I32, I32),
        Errno(BADF),
    ),
    (
        "path_open",
        sig!(I32, I32, I32, I32, I32, I64, I64, I32, I32),
        Errno(BADF),
    ),
    (
        "path_readlink",
        sig!(I32, I32, I32, I32, I32, I32),
        Errno(BADF),
    ),
    ("path_remove_directory", sig!(I32, I32, I32), Errno(BADF)),
    (
        "path_rename",
        sig!(I32, I32, I32, I32, I32, I32),
        Errno(BADF),
    ),
    ("path_symlink", sig!(I32, I32, I32, I32, I32), Errno(BADF)),
    ("path_unlink_file", sig!(I32, I32, I32), Errno(BADF)),
    ("poll_oneoff", sig!(I32, I32, I32, I32), Errno(NOTSUP)),
    (
        "proc_exit",
        Sig {
            params: &[I32],
            results: &[],
        },
        Implemented,
    ),
    ("proc_raise", sig!(I32), Errno(NOSYS)),
    ("sched_yield", sig!(), Errno(SUCCESS)),
    ("random_get", sig!(I32, I32), Implemented),
    ("sock_accept", sig!(I32, I32, I32), Errno(BADF)),
    ("sock_recv", sig!(I32, I32, I32, I32, I32, I32), Errno(BADF)),
    ("sock_send", sig!(I32, I32, I32, I32, I32), Errno(BADF)),
    ("sock_shutdown", sig!(I32, I32), Errno(BADF)),
];

/// Lists every import the sandbox does not provide, by name and why.
pub(crate) fn check_imports(module: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        let problem = match (m, import.ty()) {
            (MODULE, ExternType::Func(ty)) => match FUNCTIONS.iter().find(|f| f.0 == name) {
                Some((_, sig, _)) if sig.matches(&ty) => continue,
                Some((_, sig, _)) => format!(
                    "it imports `{m}.{name}` with type {}; WASI preview 1 defines {sig}",
                    describe(&ty)
                ),
                None => format!("it imports `{m}.{name}`, which is not a WASI preview 1 function"),
            },
            (MODULE, _) => format!("it imports `{m}.{name}`, which is not a WASI function"),
            (m, _) if m.starts_with("wasi:") => format!(
                "it imports `{m}` (`{name}`), a WASI 0.2 interface, which a core module cannot use \
                 and which this sandbox does not grant"
            ),
            ("wasi_unstable", _) => format!(
                "it imports `{m}.{name}`: WASI snapshot 0 is not supported, build for wasip1"
            ),
            (_, ExternType::Memory(_)) => {
                format!("it imports a memory `{m}.{name}`; a filter defines and exports its own")
            }
            _ => format!("it imports `{m}.{name}`; only WASI preview 1 ({MODULE}) is provided"),
        };
        problems.push(problem);
    }
    problems
}

/// The WASI state of one instance.
#[derive(Debug)]
pub(crate) struct Wasi {
    grants: Grants,
    output: GuestOutput,
    rng: fastrand::Rng,
    started: Instant,
}

impl Wasi {
    /// State for an instance of `filter`, logging through `log`.
    pub(crate) fn new(
        filter: std::sync::Arc<str>,
        log: std::sync::Arc<LogLimit>,
        grants: Grants,
    ) -> Self {
        Self {
            grants,
            output: GuestOutput::new(filter, log),
            rng: fastrand::Rng::new(),
            started: Instant::now(),
        }
    }

    /// Logs what is left of a line without its newline (after each call, so
    /// that nothing waits for a newline that never comes).
    pub(crate) fn flush(&mut self) {
        self.output.flush();
    }
}

/// A guest called `proc_exit`: the call ends with this error.
#[derive(Debug, thiserror::Error)]
#[error("called proc_exit({0})")]
pub(crate) struct ProcExit(pub i32);

/// The guest's memory and the instance state, for a host function.
fn memory<'a>(
    caller: &'a mut Caller<'_, GuestState>,
) -> Option<(&'a mut [u8], &'a mut GuestState)> {
    let memory = match caller.data().memory {
        Some(memory) => memory,
        // Before instantiation finished (a `start` function writing).
        None => caller.get_export("memory")?.into_memory()?,
    };
    Some(memory.data_and_store_mut(caller))
}

/// `len` bytes at `ptr`, if they are inside `data`.
fn slice(data: &[u8], ptr: i32, len: usize) -> Option<&[u8]> {
    let start = ptr as u32 as usize;
    data.get(start..start.checked_add(len)?)
}

/// Writes `bytes` at `ptr`, if inside `data`.
fn put(data: &mut [u8], ptr: i32, bytes: &[u8]) -> bool {
    let start = ptr as u32 as usize;
    match start
        .checked_add(bytes.len())
        .and_then(|end| data.get_mut(start..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// Writes `bytes` at `ptr` in the guest's memory: `SUCCESS` or `FAULT`.
fn put_out(caller: &mut Caller<'_, GuestState>, ptr: i32, bytes: &[u8]) -> i32 {
    let Some((data, _)) = memory(caller) else {
        return FAULT;
    };
    if put(data, ptr, bytes) {
        SUCCESS
    } else {
        FAULT
    }
}

/// Writes two zero `u32`s (an empty list's count and size).
fn empty_sizes(caller: &mut Caller<'_, GuestState>, count: i32, size: i32) -> i32 {
    let Some((data, _)) = memory(caller) else {
        return FAULT;
    };
    if put(data, count, &0u32.to_le_bytes()) && put(data, size, &0u32.to_le_bytes()) {
        SUCCESS
    } else {
        FAULT
    }
}

/// Defines every WASI preview 1 function in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let engine = linker.engine().clone();
    for (name, sig, behaviour) in FUNCTIONS {
        if let Errno(errno) = *behaviour {
            let val = |t: &Ty| match t {
                Ty::I32 => ValType::I32,
                Ty::I64 => ValType::I64,
            };
            let ty = FuncType::new(
                &engine,
                sig.params.iter().map(val),
                sig.results.iter().map(val),
            );
            linker.func_new(MODULE, name, ty, move |_, _, results| {
                if let Some(r) = results.first_mut() {
                    *r = Val::I32(errno);
                }
                Ok(())
            })?;
        }
    }

    linker.func_wrap(
        MODULE,
        "args_get",
        |_: Caller<'_, GuestState>, _: i32, _: i32| SUCCESS,
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        |_: Caller<'_, GuestState>, _: i32, _: i32| SUCCESS,
    )?;
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        |mut caller: Caller<'_, GuestState>, count: i32, size: i32| {
            empty_sizes(&mut caller, count, size)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        |mut caller: Caller<'_, GuestState>, count: i32, size: i32| {
            empty_sizes(&mut caller, count, size)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut caller: Caller<'_, GuestState>, id: i32, out: i32| -> i32 {
            if !(0..=1).contains(&id) {
                return INVAL;
            }
            // A frozen clock reports a resolution of one second.
            let resolution: u64 = if caller.data().wasi.grants.clock {
                1
            } else {
                1_000_000_000
            };
            put_out(&mut caller, out, &resolution.to_le_bytes())
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, GuestState>, id: i32, _precision: i64, out: i32| -> i32 {
            let wasi = &caller.data().wasi;
            let nanos = match id {
                // Not granted: frozen one second after the Unix epoch. An
                // error makes Go's runtime and Rust's std abort at the first
                // read, and Go refuses a monotonic clock that reads 0; a
                // clock that stands still tells the guest nothing.
                0 | 1 if !wasi.grants.clock => FROZEN_NANOS,
                0 => SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                1 => wasi.started.elapsed().as_nanos(),
                _ => return INVAL,
            };
            let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
            put_out(&mut caller, out, &nanos.to_le_bytes())
        },
    )?;

    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut caller: Caller<'_, GuestState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         written: i32|
         -> i32 {
            if fd != 1 && fd != 2 {
                return BADF;
            }
            let Some((data, state)) = memory(&mut caller) else {
                return FAULT;
            };
            let mut total = 0usize;
            for i in 0..iovs_len.max(0) as u32 {
                if total >= MAX_WRITE {
                    break;
                }
                let Some(iov) = slice(data, iovs.wrapping_add((i * 8) as i32), 8) else {
                    return FAULT;
                };
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]) as usize;
                let len = len.min(MAX_WRITE - total);
                let Some(bytes) = slice(data, ptr, len) else {
                    return FAULT;
                };
                state.wasi.output.write(Stream::from_fd(fd), bytes);
                total += len;
            }
            if put(data, written, &(total as u32).to_le_bytes()) {
                SUCCESS
            } else {
                FAULT
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_read",
        |mut caller: Caller<'_, GuestState>,
         fd: i32,
         _iovs: i32,
         _iovs_len: i32,
         read: i32|
         -> i32 {
            if fd != 0 {
                return BADF;
            }
            // stdin is empty: end of file.
            put_out(&mut caller, read, &0u32.to_le_bytes())
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut caller: Caller<'_, GuestState>, fd: i32, out: i32| -> i32 {
            // struct fdstat { u8 filetype; u16 flags @2; u64 rights_base @8; u64 rights_inheriting @16 }
            const CHARACTER_DEVICE: u8 = 2;
            const RIGHT_FD_READ: u64 = 1 << 1;
            const RIGHT_FD_WRITE: u64 = 1 << 6;
            let rights = match fd {
                0 => RIGHT_FD_READ,
                1 | 2 => RIGHT_FD_WRITE,
                _ => return BADF,
            };
            let mut stat = [0u8; 24];
            stat[0] = CHARACTER_DEVICE;
            stat[8..16].copy_from_slice(&rights.to_le_bytes());
            put_out(&mut caller, out, &stat)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_set_flags",
        |_: Caller<'_, GuestState>, fd: i32, _flags: i32| -> i32 {
            if (0..=2).contains(&fd) { SUCCESS } else { BADF }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut caller: Caller<'_, GuestState>, buf: i32, len: i32| -> i32 {
            let Some((data, state)) = memory(&mut caller) else {
                return FAULT;
            };
            let start = buf as u32 as usize;
            match start
                .checked_add(len as u32 as usize)
                .and_then(|end| data.get_mut(start..end))
            {
                Some(dst) => {
                    state.wasi.rng.fill(dst);
                    SUCCESS
                }
                None => FAULT,
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_: Caller<'_, GuestState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::new(ProcExit(code)))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use wasmtime::{Engine, Extern, Store};

    use super::*;
    use crate::filter::core::GuestState;

    /// The table drives import checks; the linker is what guests get. They
    /// must agree on every name and signature.
    #[test]
    fn the_linker_defines_every_function_of_the_table_with_its_signature() {
        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).unwrap();
        let mut store = Store::new(
            &engine,
            GuestState::new(
                Arc::from("t"),
                Arc::new(LogLimit::new(1, 1)),
                Grants::default(),
                1 << 20,
            ),
        );
        let defined: Vec<(String, String, Extern)> = linker
            .iter(&mut store)
            .map(|(m, n, e)| (m.to_owned(), n.to_owned(), e))
            .collect();
        assert_eq!(defined.len(), FUNCTIONS.len());
        for (name, sig, _) in FUNCTIONS {
            let (_, _, ext) = defined
                .iter()
                .find(|(m, n, _)| m == MODULE && n == name)
                .unwrap_or_else(|| panic!("{name} is not defined"));
            let ty = ext.clone().into_func().unwrap().ty(&store);
            assert!(sig.matches(&ty), "{name}: {} vs {sig}", describe(&ty));
        }
    }
}
