//! Replaces a hostile document with JSON-looking bytes that are not UTF-8.

guest_util::abi_v1!();

/// Returns invalid UTF-8 for a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        return guest_util::replace(b"{\"message\":\"caf\xe9 \xff\xfe\"}");
    }
    guest_util::keep()
}
