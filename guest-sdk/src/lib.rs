//! `kwex-guest`: write kwex filters in Rust.
//!
//! A kwex filter is a WebAssembly module that receives one Document at a
//! time (the JSON of `docs/document.md`) and answers keep, drop, replace
//! (new JSON), route (another index), or an error. With this crate you write
//! a type that implements [`Filter`], and [`export!`] turns it into the
//! exports kwex expects, for the target you build:
//!
//! | Target | What you get |
//! |---|---|
//! | `wasm32-unknown-unknown` (recommended: no imports at all), `wasm32-wasip1` | a core module, ABI v1 (`guest-sdk/ABI.md`) |
//! | `wasm32-wasip2` | a component of the world `kwex:filter/filter@1.0.0` (`guest-sdk/wit/filter.wit`) |
//! | your machine's target | nothing exported: `cargo test` runs your unit tests with [`testing`] |
//!
//! # Example
//!
//! Route each namespace's Warnings to an index of its own, from a config such
//! as `{"routes": {"payments": "kwex-payments"}}`; drop the rest.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use kwex_guest::{Document, Filter, Result, Verdict, check_index_name, export};
//! use serde::Deserialize;
//!
//! /// `null` (no config) reads as `{}`, so `routes` is empty then.
//! #[derive(Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     routes: BTreeMap<String, String>,
//! }
//!
//! struct RouteWarnings {
//!     routes: BTreeMap<String, String>,
//! }
//!
//! impl Filter for RouteWarnings {
//!     type Config = Config;
//!
//!     fn init(config: Config) -> Result<Self> {
//!         for index in config.routes.values() {
//!             check_index_name(index)?; // a bad name stops kwex at start, not each document
//!         }
//!         Ok(Self { routes: config.routes })
//!     }
//!
//!     fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
//!         if doc.type_str() != Some("Warning") {
//!             return Ok(Verdict::Drop);
//!         }
//!         Ok(match doc.namespace().and_then(|ns| self.routes.get(ns)) {
//!             Some(index) => Verdict::route(index),
//!             None => Verdict::Keep,
//!         })
//!     }
//! }
//!
//! export!(RouteWarnings);
//!
//! // In `#[cfg(test)] mod tests`, natively:
//! use kwex_guest::testing::{self, Harness};
//!
//! let mut filter = Harness::<RouteWarnings>::new(r#"{"routes": {"default": "kwex-default"}}"#)?;
//! assert_eq!(filter.filter(testing::EXAMPLE_DOCUMENT)?, Verdict::route("kwex-default"));
//! let normal = testing::document(serde_json::json!({"type": "Normal"}));
//! assert_eq!(filter.filter(&normal)?, Verdict::Drop);
//! assert!(Harness::<RouteWarnings>::new(r#"{"route": {}}"#).is_err()); // a typo
//! # Ok::<(), kwex_guest::Error>(())
//! ```
//!
//! Its `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! kwex-guest = { path = "../../guest-sdk" }
//! serde = { version = "1", features = ["derive"] }
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! codegen-units = 1
//! panic = "abort"
//! strip = true
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown`, check
//! with `kwex filter test target/wasm32-unknown-unknown/release/NAME.wasm
//! EVENTS`. `docs/writing-filters.md` walks through it all.
//!
//! # What to know
//!
//! - **Config**: see [`Filter::Config`] for how `null` (no config) is read.
//!   Errors of parsing it start with `config: `.
//! - **Documents** are parsed into a [`Document`] that borrows from the input;
//!   every field is optional and a field of an unexpected JSON type reads as
//!   absent (another filter may have rewritten the document). Only input that
//!   is not a JSON object becomes an error before your code runs.
//! - **Errors** are [`Error`]: `?` converts any `Display` error.
//! - **State** in `&mut self` lives as long as the instance: per worker
//!   thread, lost when kwex replaces the instance (see [`Filter`]).
//! - **Panics** abort the instance (build with `panic = "abort"`); prefer `Err`.
//! - **Sandbox**: no clock, files, environment or network; 5 ms per document
//!   and 16 MiB of memory by default.
//! - **Unsafe**: `export!` expands to `#[unsafe(no_mangle)]` exports in your
//!   crate, under `#[allow(unsafe_code)]`: a crate that `forbid`s unsafe code
//!   cannot use it, one that `deny`s it can.
mod document;
mod error;
mod filter;
pub mod glob;
pub mod testing;
mod verdict;

/// The glue `export!` expands to; not public API (it may change in any release).
#[doc(hidden)]
#[path = "glue/mod.rs"]
pub mod __private;

pub use document::{Document, Kwex, Metadata, ObjectRef, Source, StringMap};
pub use error::{Error, Result};
pub use filter::Filter;
pub use glob::Glob;
pub use verdict::{Verdict, check_index_name};

/// The `serde` this crate is built with, for `#[derive(Deserialize)]` on
/// configs without a dependency of your own (add
/// `#[serde(crate = "kwex_guest::serde")]` then).
pub use serde;
/// The `serde_json` this crate is built with: [`Document::to_map`] and
/// [`Document::extra`] hand out its `Map` and `Value`.
pub use serde_json;

/// Exports a [`Filter`] for the target being built: the core-module ABI v1
/// on `wasm32-unknown-unknown` and `wasm32-wasip1`, the component world
/// `kwex:filter/filter@1.0.0` on `wasm32-wasip2`, nothing (a type check) on
/// other targets.
///
/// Use it once per crate (a crate is one filter), at the top level:
/// `export!(MyFilter);`. The filter value lives in a thread-local of the
/// instance, created by `init` and used by every `filter` call.
#[macro_export]
macro_rules! export {
    ($filter:ty) => {
        $crate::__export_for_target!($filter);
    };
    ($filter:ty,) => {
        $crate::__export_for_target!($filter);
    };
}
