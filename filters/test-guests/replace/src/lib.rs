//! Adds one field to every document: `{"field": name, "value": v}` from its
//! config, or `"filtered": true` when it has none (config `null`).

use std::cell::RefCell;

use serde_json::{Map, Value};

guest_util::abi_v1!();

thread_local! {
    static FIELD: RefCell<(String, Value)> = RefCell::new(("filtered".into(), Value::Bool(true)));
}

/// Reads the field to add.
#[unsafe(no_mangle)]
pub extern "C" fn init(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let config = unsafe { guest_util::input(ptr, len) };
    match serde_json::from_slice::<Value>(config) {
        Ok(Value::Null) => guest_util::keep(),
        Ok(Value::Object(mut map)) => {
            let (Some(Value::String(field)), Some(value)) =
                (map.remove("field"), map.remove("value"))
            else {
                return guest_util::error("config needs \"field\" (a string) and \"value\"");
            };
            FIELD.set((field, value));
            guest_util::keep()
        }
        Ok(_) => guest_util::error("config must be an object or null"),
        Err(e) => guest_util::error(&format!("config is not JSON: {e}")),
    }
}

/// Adds the field.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: as above.
    let doc = unsafe { guest_util::input(ptr, len) };
    let mut map: Map<String, Value> = match serde_json::from_slice(doc) {
        Ok(m) => m,
        Err(e) => return guest_util::error(&format!("document is not a JSON object: {e}")),
    };
    FIELD.with_borrow(|(field, value)| map.insert(field.clone(), value.clone()));
    let body = serde_json::to_vec(&map).unwrap_or_default();
    guest_util::replace(&body)
}
