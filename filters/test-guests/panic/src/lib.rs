//! Panics on a hostile document; with `panic = "abort"` that is a wasm trap.

guest_util::abi_v1!();

/// Panics on a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        panic!("hostile document");
    }
    guest_util::keep()
}
