//! What [`export!`](crate::export) expands to: the glue between kwex and a
//! [`Filter`], for the ABI of the target being built.
//!
//! Not public API (`#[doc(hidden)]`, reached as `kwex_guest::__private`):
//! only the macro calls it, and it may change with any release.
//!
//! | Target | ABI | Module |
//! |---|---|---|
//! | `wasm32-unknown-unknown`, `wasm32-wasip1` | core module ABI v1 (`guest-sdk/ABI.md`) | `core_abi` |
//! | `wasm32-wasip2` | component, world `kwex:filter/filter@1.0.0` (`guest-sdk/wit/`) | `component` |
//! | anything else (the native target of `cargo test`) | none: `export!` only checks the type | — |

use std::cell::RefCell;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;

use crate::{Document, Error, Filter, Result, Verdict};

#[cfg(all(
    target_family = "wasm",
    not(all(target_os = "wasi", not(target_env = "p1")))
))]
pub mod core_abi;

#[cfg(all(target_family = "wasm", target_os = "wasi", not(target_env = "p1")))]
pub mod component;

/// Where `export!` keeps the filter: a `thread_local!` in the filter's crate
/// (one per instance, since wasm instances have one thread). `None` until
/// `init` succeeds.
pub type Slot<F> = LocalKey<RefCell<Option<F>>>;

/// Reads the config as [`Filter::Config`] documents it: `null` as itself if
/// the type takes it, else as `{}`; errors prefixed with `config: `.
pub fn parse_config<C: DeserializeOwned>(text: &str) -> Result<C> {
    if text.trim() == "null" {
        if let Ok(config) = serde_json::from_str::<C>("null") {
            return Ok(config);
        }
        return serde_json::from_str::<C>("{}").map_err(|e| Error::from(e).context("config"));
    }
    serde_json::from_str::<C>(text).map_err(|e| Error::from(e).context("config"))
}

/// Parses the config and builds the filter.
pub fn init<F: Filter>(config: &str) -> Result<F> {
    F::init(parse_config(config)?)
}

/// Parses the document and asks the filter.
pub fn filter<F: Filter>(filter: &mut F, document: &str) -> Result<Verdict> {
    filter.filter(&Document::parse(document)?)
}

/// `init` for an instance: builds the filter into `slot` (emptied on failure).
pub fn init_slot<F: Filter>(slot: &'static Slot<F>, config: &str) -> Result<()> {
    slot.set(None);
    slot.set(Some(init::<F>(config)?));
    Ok(())
}

/// `filter` for an instance: asks the filter in `slot`.
pub fn filter_slot<F: Filter>(slot: &'static Slot<F>, document: &str) -> Result<Verdict> {
    slot.with_borrow_mut(|state| match state {
        Some(f) => filter(f, document),
        None => Err(Error::msg("filter called before a successful init")),
    })
}

/// What `export!` expands to on the native target: a check that the type
/// is a [`Filter`], so `cargo check` and `cargo test` catch mistakes there.
pub fn assert_filter<F: Filter>() {}

/// Exports `$filter` under the core-module ABI v1 (guest-sdk/ABI.md): the
/// `kwex_abi_v1` marker, `alloc`, `dealloc`, `init` and `filter`. Rust
/// exports the `memory` itself.
#[cfg(all(
    target_family = "wasm",
    not(all(target_os = "wasi", not(target_env = "p1")))
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_for_target {
    ($filter:ty) => {
        // The exports must be `#[unsafe(no_mangle)]` items of the crate being
        // linked; each unsafe block calls the SDK with what kwex passed.
        #[allow(unsafe_code)]
        const _: () = {
            ::std::thread_local! {
                static FILTER: ::std::cell::RefCell<::std::option::Option<$filter>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            /// Marks the module as speaking kwex's core ABI v1; never called.
            #[unsafe(no_mangle)]
            extern "C" fn kwex_abi_v1() {}

            #[unsafe(no_mangle)]
            extern "C" fn alloc(len: i32) -> i32 {
                $crate::__private::core_abi::alloc(len)
            }

            #[unsafe(no_mangle)]
            extern "C" fn dealloc(ptr: i32, len: i32) {
                // SAFETY: kwex passes back exactly what `alloc` returned, with
                // the same length (ABI.md section 4, step 5).
                unsafe { $crate::__private::core_abi::dealloc(ptr, len) }
            }

            #[unsafe(no_mangle)]
            extern "C" fn init(ptr: i32, len: i32) -> i64 {
                // SAFETY: kwex lends `len` bytes at `ptr` for this call
                // (ABI.md section 4, steps 1-3).
                unsafe { $crate::__private::core_abi::init::<$filter>(&FILTER, ptr, len) }
            }

            #[unsafe(no_mangle)]
            extern "C" fn filter(ptr: i32, len: i32) -> i64 {
                // SAFETY: as for `init`.
                unsafe { $crate::__private::core_abi::filter::<$filter>(&FILTER, ptr, len) }
            }
        };
    };
}

/// Exports `$filter` as the component world `kwex:filter/filter@1.0.0`.
#[cfg(all(target_family = "wasm", target_os = "wasi", not(target_env = "p1")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_for_target {
    ($filter:ty) => {
        // wit-bindgen's export macro writes `#[unsafe(export_name)]` functions.
        #[allow(unsafe_code)]
        const _: () = {
            ::std::thread_local! {
                static FILTER: ::std::cell::RefCell<::std::option::Option<$filter>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct KwexFilter;

            impl $crate::__private::component::bindings::Guest for KwexFilter {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::component::init::<$filter>(&FILTER, &config)
                }

                fn filter(
                    document: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::__private::component::WitVerdict,
                    ::std::string::String,
                > {
                    $crate::__private::component::filter::<$filter>(&FILTER, &document)
                }
            }

            $crate::__private::component::bindings::export!(
                KwexFilter with_types_in $crate::__private::component::bindings
            );
        };
    };
}

/// On other targets (native `cargo test`, `cargo clippy`) there is nothing to
/// export: only check that `$filter` is a `Filter`.
#[cfg(not(target_family = "wasm"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_for_target {
    ($filter:ty) => {
        const _: fn() = $crate::__private::assert_filter::<$filter>;
    };
}
