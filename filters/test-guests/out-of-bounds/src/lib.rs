//! Returns a result pointer far outside its memory on a hostile document.

guest_util::abi_v1!();

/// Points outside memory for a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        return guest_util::pack(0xFFFF_0000, 4096);
    }
    guest_util::keep()
}
