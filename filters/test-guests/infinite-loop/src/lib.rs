//! Never returns on a hostile document: only the epoch deadline stops it.

use std::hint::black_box;

guest_util::abi_v1!();

/// Loops forever on a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }
    guest_util::keep()
}
