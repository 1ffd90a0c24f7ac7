//! [`Filter`]: the trait a filter implements.

use serde::de::DeserializeOwned;

use crate::{Document, Result, Verdict};

/// A kwex filter: built once per instance from its config, then asked about
/// one document after another.
///
/// Export it with [`export!`](crate::export). The value lives in a static of
/// the WebAssembly instance, so `&mut self` state (counters, caches, rate
/// limits) persists from one document to the next. That state is **per
/// instance**: kwex runs one instance per worker thread, each seeing only
/// part of the stream, and replaces an instance after a trap, a timeout, the
/// memory cap or a memory watermark (12 MiB by default), and on a reload or
/// restart. Use it for best-effort work (sampling, rate limiting), never for
/// correctness.
pub trait Filter: Sized + 'static {
    /// The filter's config, read with `serde_json` from the JSON that kwex
    /// passes to `init` (the value in the pipeline file).
    ///
    /// When no config is given kwex passes `null`. The SDK first tries
    /// `null` itself (so `Option<T>`, `()` and `serde_json::Value` see it),
    /// and if the type refuses `null`, reads `{}` instead: a struct whose
    /// fields have `#[serde(default)]` gets its defaults with no config at
    /// all. Parse errors come back as an init error starting with
    /// `config: `. Add `#[serde(deny_unknown_fields)]` to refuse typos.
    ///
    /// One serde quirk to know: a derived struct also accepts a JSON array
    /// of its fields in order, so `[]` passes for a struct whose fields all
    /// have defaults. To refuse anything but an object, take
    /// `Option<serde_json::Map<String, Value>>` and check it in `init`.
    type Config: DeserializeOwned;

    /// Builds the filter from its config. An `Err` refuses the filter: at
    /// start kwex does not start, naming the filter and your message; on a
    /// reload the old chain stays.
    fn init(config: Self::Config) -> Result<Self>;

    /// Decides about one document. An `Err` does not stop kwex or replace the
    /// instance: the filter's failure policy (`pass`, `drop`, or
    /// `dead-letter`, the default) decides what happens to the document.
    ///
    /// A panic aborts the instance (a trap): the document gets the failure
    /// policy, and kwex starts a new instance, losing the filter's state.
    fn filter(&mut self, document: &Document<'_>) -> Result<Verdict>;
}
