//! The component world `kwex:filter/filter@1.0.0` (guest-sdk/wit/filter.wit),
//! guest side: the bindings wit-bindgen generates from the WIT, and the
//! conversion from the SDK's types to theirs. Strings cross the boundary as
//! owned copies (the canonical ABI's rule), so there is no lending here.

use super::{Slot, filter_slot, init_slot};
use crate::{Filter, Verdict};

/// Generated from `guest-sdk/wit/filter.wit`. The export macro is public so
/// that `export!` can call it from the filter's crate.
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "filter",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "kwex_guest::__private::component::bindings",
    });
}

use bindings::kwex::filter::types::RouteTarget;
/// The WIT `verdict`, as the `filter` export returns it.
pub use bindings::kwex::filter::types::Verdict as WitVerdict;

/// The `init` export.
pub fn init<F: Filter>(slot: &'static Slot<F>, config: &str) -> Result<(), String> {
    init_slot(slot, config).map_err(|e| e.message().to_owned())
}

/// The `filter` export.
pub fn filter<F: Filter>(slot: &'static Slot<F>, document: &str) -> Result<WitVerdict, String> {
    match filter_slot(slot, document) {
        Ok(Verdict::Keep) => Ok(WitVerdict::Keep),
        Ok(Verdict::Drop) => Ok(WitVerdict::Drop),
        Ok(Verdict::Replace(json)) => Ok(WitVerdict::Replace(json)),
        Ok(Verdict::Route { index, document }) => {
            Ok(WitVerdict::Route(RouteTarget { index, document }))
        }
        Err(error) => Err(error.message().to_owned()),
    }
}
