//! Keeps documents whose `type` is `Warning`, drops the others.
//!
//! Written against the raw core-module ABI v1 (`guest-sdk/ABI.md`) with no
//! helper crate, as the reference for a filter in any language: export
//! `memory` (the Rust toolchain does), `kwex_abi_v1`, `alloc`, `dealloc` and
//! `filter`, and answer with a pointer/length pair packed in an i64.
//!
//! Scanning the bytes for `"type":"Warning"` is enough here: kwex writes
//! Documents compactly, with no spaces.

use std::alloc::{Layout, alloc as std_alloc, dealloc as std_dealloc};

/// The two results this filter ever gives: one verdict byte, no payload.
/// They live in the data segment, so nothing needs freeing.
static KEEP: [u8; 1] = [0];
static DROP: [u8; 1] = [1];

/// Marks the module as speaking the core-module ABI v1. Never called.
#[unsafe(no_mangle)]
pub extern "C" fn kwex_abi_v1() {}

/// Returns `len` bytes for the host to write the document into (0 if out of memory).
#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: i32) -> i32 {
    match Layout::from_size_align(len.max(1) as usize, 1) {
        // SAFETY: non-zero size.
        Ok(layout) => unsafe { std_alloc(layout) as usize as i32 },
        Err(_) => 0,
    }
}

/// Frees what `alloc` returned; the host calls it after `filter` returns.
#[unsafe(no_mangle)]
pub extern "C" fn dealloc(ptr: i32, len: i32) {
    if let Ok(layout) = Layout::from_size_align(len.max(1) as usize, 1) {
        // SAFETY: the host passes back exactly what `alloc` gave it.
        unsafe { std_dealloc(ptr as usize as *mut u8, layout) }
    }
}

/// Packs a result pointer and length: pointer in the high 32 bits, length in the low 32.
fn pack(result: &'static [u8]) -> i64 {
    (((result.as_ptr() as usize as u64) << 32) | result.len() as u64) as i64
}

/// The filter: keep Warnings, drop everything else.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent us `len` bytes at `ptr` for this call.
    let doc = unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    let needle = b"\"type\":\"Warning\"";
    if doc.windows(needle.len()).any(|w| w == needle) {
        pack(&KEEP)
    } else {
        pack(&DROP)
    }
}
