//! The WebAssembly filter runtime: user-supplied filters that keep, drop,
//! change or route each Document, run by wasmtime in a sandbox.
//!
//! - [`engine`]: the one [`Engine`] of the process (pooling allocator, epoch
//!   deadlines, memory caps, optional fuel) and the [`Settings`] and
//!   [`Limits`] defaults, with the reasons for them.
//! - [`abi`]: the core-module ABI v1 (`guest-sdk/ABI.md`): exports, result
//!   encoding, checks of what a guest returns.
//! - `core`, `component`: the two ABIs on a live instance: core modules, and
//!   components of the `kwex:filter` world (`guest-sdk/wit/`), told apart by
//!   their header.
//! - `wasi`: WASI preview 1 with nothing granted (core modules); components
//!   get WASI 0.2 from `wasmtime-wasi`, granted nothing.
//! - `instance`: what both ABIs share: limits, budgets, checks, failures.
//! - [`chain`]: filters in order, each with its failure policy;
//!   [`ChainWorker::apply`] runs a [`Record`](crate::document::Record)
//!   through them.
//! - [`pipeline_file`]: where a chain comes from (a directory, or a
//!   `pipeline.yaml` with per-filter config, policy, limits and grants).
//! - [`reload`]: hot reload: [`LiveChain`] swapped between documents by a
//!   [`Reloader`] watching the directory.
//! - [`testing`], [`inspect`]: `kwex filter test | bench | inspect`.
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

pub mod abi;
pub mod chain;
mod component;
mod core;
pub mod engine;
pub mod error;
pub mod inspect;
mod instance;
mod log;
pub mod metrics;
pub mod pipeline_file;
pub mod reload;
pub mod testing;
mod wasi;

pub use chain::{Chain, ChainWorker, FilterSpec, Outcome};
pub use engine::{Engine, EngineError, Grants, Limits, Policy, Settings};
pub use error::{ErrorKind, Failure, FilterError, LoadError};
pub use instance::Verdict;
pub use metrics::Metrics;
pub use pipeline_file::ChainSource;
pub use reload::{LiveChain, LiveWorker, Reloader, Snapshot};
