//! Adds `"seen": n` to each document, n counting the calls this instance has
//! had: proves that an instance is reused across calls, and that its state
//! starts over when the host replaces it. Panics on a hostile document; on
//! a document containing `grow-14mib` it first allocates (and frees) 14 MiB,
//! which leaves its memory above the default 12 MiB watermark but below the
//! 16 MiB cap: the call succeeds, and the host replaces the instance after.

use std::cell::Cell;

use serde_json::{Map, Value};

guest_util::abi_v1!();

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// Counts and tags the document.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        panic!("hostile document");
    }
    if guest_util::contains(doc, b"grow-14mib") {
        let big = std::hint::black_box(vec![1u8; 14 << 20]);
        drop(big);
    }
    let seen = SEEN.get() + 1;
    SEEN.set(seen);
    let mut map: Map<String, Value> = match serde_json::from_slice(doc) {
        Ok(m) => m,
        Err(e) => return guest_util::error(&format!("document is not a JSON object: {e}")),
    };
    map.insert("seen".into(), Value::from(seen));
    let body = serde_json::to_vec(&map).unwrap_or_default();
    guest_util::replace(&body)
}
