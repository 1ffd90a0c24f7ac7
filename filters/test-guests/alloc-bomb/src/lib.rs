//! Allocates (and touches) 1 MiB after 1 MiB on a hostile document until
//! the allocator fails, which aborts: the host must report the memory cap.

use std::hint::black_box;

guest_util::abi_v1!();

/// Allocates until the cap on a hostile document, keeps the others.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(black_box(vec![1u8; 1 << 20]));
            black_box(&hoard);
        }
    }
    guest_util::keep()
}
