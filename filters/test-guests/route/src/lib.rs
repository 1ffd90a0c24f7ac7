//! Routes every document to the index named by its config
//! (`{"index": "…"}`); with `"tag": "…"` it also adds `"routedBy": tag`
//! to the document, exercising `route` with a new body.

use std::cell::RefCell;

use serde_json::{Map, Value};

guest_util::abi_v1!();

thread_local! {
    static CONFIG: RefCell<(String, Option<String>)> = const { RefCell::new((String::new(), None)) };
}

/// Reads `index` (required) and `tag` (optional) from the config.
#[unsafe(no_mangle)]
pub extern "C" fn init(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let config = unsafe { guest_util::input(ptr, len) };
    let value: Value = match serde_json::from_slice(config) {
        Ok(v) => v,
        Err(e) => return guest_util::error(&format!("config is not JSON: {e}")),
    };
    let Some(index) = value.get("index").and_then(Value::as_str) else {
        return guest_util::error("config needs \"index\": a string");
    };
    let tag = value.get("tag").and_then(Value::as_str).map(str::to_owned);
    CONFIG.set((index.to_owned(), tag));
    guest_util::keep()
}

/// Routes the document.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: as above.
    let doc = unsafe { guest_util::input(ptr, len) };
    CONFIG.with_borrow(|(index, tag)| match tag {
        None => guest_util::route(index, None),
        Some(tag) => {
            let mut map: Map<String, Value> = match serde_json::from_slice(doc) {
                Ok(m) => m,
                Err(e) => return guest_util::error(&format!("document is not a JSON object: {e}")),
            };
            map.insert("routedBy".into(), Value::String(tag.clone()));
            let body = serde_json::to_vec(&map).unwrap_or_default();
            guest_util::route(index, Some(&body))
        }
    })
}
