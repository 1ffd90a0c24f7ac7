//! The WebAssembly filter runtime: user-supplied filters that keep, drop,
//! change or route each Document, run by wasmtime in a sandbox.
//!
//! - [`engine`]: the one [`Engine`] of the process (pooling allocator, epoch
//!   deadlines, memory caps, optional fuel) and the [`Settings`] and
//!   [`Limits`] defaults, with the reasons for them.
//! - [`abi`]: the core-module ABI v1 (`guest-sdk/ABI.md`): exports, result
//!   encoding, checks of what a guest returns.
//! - `wasi`: WASI preview 1 with nothing granted; guest output to the log.
//! - `instance`: one live instance, reused across calls, and the calls.
//! - [`chain`]: filters from a directory, in order, each with its failure
//!   policy; [`ChainWorker::apply`] runs a [`Record`](crate::document::Record)
//!   through them.
//! - [`metrics`]: the `kwex_filter_*` families.
//!
//! # Using it
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kwex::filter::{Chain, Engine, Metrics, Outcome, Settings};
//!
//! let engine = Engine::new(Settings::default())?;
//! let metrics = Metrics::register(&prometheus::Registry::new())?;
//! let chain = Chain::load(&engine, "/etc/kwex/filters".as_ref(), &metrics)?;
//! // On each worker thread:
//! let mut worker = chain.worker();
//! # let record = kwex::document::Record { id: "u:1".into(), index: "i".into(), body: "{}".into() };
//! match worker.apply(record) {
//!     Outcome::Keep(record) => { /* on to the spool */ }
//!     Outcome::Drop => {}
//!     Outcome::DeadLetter(record, error) => { /* to the dead-letter index */ }
//! }
//! # Ok(()) }
//! ```
//!
//! Not yet here (see `docs/decisions/2026-11-25-filter-runtime.md`): the
//! component ABI, the pipeline file with per-filter config, limits, policy
//! and grants ([`FilterSpec`] is its seam), hot reload, the `kwex filter`
//! commands, and the worker pool in `pipeline.rs`.

pub mod abi;
pub mod chain;
pub mod engine;
pub mod error;
mod instance;
mod log;
pub mod metrics;
mod wasi;

pub use chain::{Chain, ChainWorker, FilterSpec, Outcome};
pub use engine::{Engine, EngineError, Grants, Limits, Policy, Settings};
pub use error::{ErrorKind, Failure, FilterError, LoadError};
pub use metrics::Metrics;
