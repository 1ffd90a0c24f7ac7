//! Replaces a hostile document with text that is not a JSON object:
//! truncated JSON, or (for `hostile-array`) a JSON array.

guest_util::abi_v1!();

/// Returns invalid JSON for a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile-array") {
        return guest_util::replace(b"[1,2,3]");
    }
    if guest_util::contains(doc, b"hostile") {
        return guest_util::replace(b"{\"message\": \"cut sh");
    }
    guest_util::keep()
}
