//! Replaces a hostile document with a 50 MiB JSON object: more than the
//! memory cap allows by default, and more than the output limit when the cap
//! is raised.

guest_util::abi_v1!();

const SIZE: usize = 50 << 20;

/// Returns 50 MiB for a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        let mut out = Vec::with_capacity(SIZE + 16);
        out.push(guest_util::REPLACE);
        out.extend_from_slice(b"{\"x\":\"");
        out.resize(SIZE - 2, b'a');
        out.extend_from_slice(b"\"}");
        let packed = guest_util::pack(out.as_ptr() as u32, out.len() as u32);
        // Owned by the guest until the next call; leaking it is fine for a test.
        std::mem::forget(out);
        return packed;
    }
    guest_util::keep()
}
