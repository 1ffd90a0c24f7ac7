//! The few lines every test guest needs to speak kwex's core-module ABI v1
//! (`guest-sdk/ABI.md`), kept here so that each guest shows only the one
//! thing it does (or breaks).
//!
//! This is not the guest SDK (`guest-sdk/`): it is deliberately thin, so
//! that the tests exercise the ABI as written down, not a library's view of
//! it. `keep-warnings` uses none of it, as the reference for writing a filter
//! with no helper at all.

use std::alloc::Layout;
use std::cell::RefCell;

/// Verdict code: the document goes on unchanged (for `init`: success).
pub const KEEP: u8 = 0;
/// Verdict code: the document is dropped.
pub const DROP: u8 = 1;
/// Verdict code: the payload is the new document.
pub const REPLACE: u8 = 2;
/// Verdict code: the payload is an index name, optionally followed by `\n` and a new document.
pub const ROUTE: u8 = 3;
/// Verdict code: the payload is an error message.
pub const ERROR: u8 = 4;

thread_local! {
    /// The last result. The guest owns it; the host copies it before it
    /// calls into the instance again, so it is simply overwritten next time.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Packs a result pointer and length into `filter`'s i64 return value.
pub fn pack(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Stores `code` followed by `parts` as the result and returns it packed.
pub fn result(code: u8, parts: &[&[u8]]) -> i64 {
    OUT.with_borrow_mut(|out| {
        out.clear();
        out.push(code);
        for part in parts {
            out.extend_from_slice(part);
        }
        pack(out.as_ptr() as u32, out.len() as u32)
    })
}

/// Keep the document unchanged.
pub fn keep() -> i64 {
    result(KEEP, &[])
}

/// Drop the document.
pub fn drop_document() -> i64 {
    result(DROP, &[])
}

/// Replace the document with `json`.
pub fn replace(json: &[u8]) -> i64 {
    result(REPLACE, &[json])
}

/// Route the document to `index`, with a new body if given.
pub fn route(index: &str, json: Option<&[u8]>) -> i64 {
    match json {
        Some(json) => result(ROUTE, &[index.as_bytes(), b"\n", json]),
        None => result(ROUTE, &[index.as_bytes()]),
    }
}

/// Report an error.
pub fn error(message: &str) -> i64 {
    result(ERROR, &[message.as_bytes()])
}

/// The bytes the host lent for this call.
///
/// # Safety
/// `ptr`/`len` must be what the host passed to `filter` or `init`.
pub unsafe fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
    unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `alloc` as the ABI wants it: 0 when the memory is exhausted.
pub fn alloc(len: i32) -> i32 {
    match Layout::from_size_align(len.max(1) as usize, 1) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { std::alloc::alloc(layout) as usize as i32 },
        Err(_) => 0,
    }
}

/// `dealloc` as the ABI wants it.
pub fn dealloc(ptr: i32, len: i32) {
    if let Ok(layout) = Layout::from_size_align(len.max(1) as usize, 1) {
        // SAFETY: the host gives back exactly what `alloc` returned, with its length.
        unsafe { std::alloc::dealloc(ptr as usize as *mut u8, layout) }
    }
}

/// Exports `alloc` and `dealloc` (and nothing else).
#[macro_export]
macro_rules! alloc_exports {
    () => {
        #[unsafe(no_mangle)]
        pub extern "C" fn alloc(len: i32) -> i32 {
            $crate::alloc(len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn dealloc(ptr: i32, len: i32) {
            $crate::dealloc(ptr, len)
        }
    };
}

/// Exports the ABI v1 marker, `alloc` and `dealloc`.
#[macro_export]
macro_rules! abi_v1 {
    () => {
        $crate::alloc_exports!();
        #[unsafe(no_mangle)]
        pub extern "C" fn kwex_abi_v1() {}
    };
}
