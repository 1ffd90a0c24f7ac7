//! The core-module ABI v1 (guest-sdk/ABI.md), guest side.
//!
//! Who frees what (ABI.md section 4): kwex asks [`alloc`] for a buffer,
//! writes the input into it, calls `init` or `filter`, copies the result out,
//! then hands the buffer back to [`dealloc`]. The input is only *lent* to the
//! call: nothing here keeps a pointer into it (the `Document` borrowing from
//! it is gone when the call returns, and `Filter: 'static` cannot hold it).
//! The result is ours: keep and drop point at static bytes, everything else
//! at [`RESULT`], which stays intact until the next call overwrites it.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::cell::RefCell;

use super::{Slot, filter_slot, init_slot};
use crate::{Error, Filter, Result, Verdict};

const KEEP: u8 = 0x00;
const DROP: u8 = 0x01;
const REPLACE: u8 = 0x02;
const ROUTE: u8 = 0x03;
const ERROR: u8 = 0x04;

/// Keep and drop answers: one byte each, in the data segment.
static KEEP_RESULT: [u8; 1] = [KEEP];
static DROP_RESULT: [u8; 1] = [DROP];

thread_local! {
    /// The last result with a payload. kwex copies it before it calls into
    /// the instance again, so the next result simply overwrites it; its
    /// capacity is reused from call to call.
    static RESULT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `alloc(len)`: `len` writable bytes for the input, or 0 when memory is
/// exhausted (kwex then reports a memory error rather than a trap).
pub fn alloc(len: i32) -> i32 {
    let Ok(layout) = Layout::from_size_align((len as u32 as usize).max(1), 1) else {
        return 0;
    };
    // SAFETY: the layout's size is at least 1. A null return (out of memory)
    // becomes 0, which the ABI reserves for exactly that.
    let ptr = unsafe { std::alloc::alloc(layout) };
    ptr as usize as i32
}

/// `dealloc(ptr, len)`: frees an input buffer.
///
/// # Safety
/// `ptr` and `len` must be a pointer returned by [`alloc`] and the length it
/// was asked for, not yet freed.
pub unsafe fn dealloc(ptr: i32, len: i32) {
    if ptr == 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align((len as u32 as usize).max(1), 1) {
        // SAFETY: per this function's contract, `ptr` came from `alloc` with
        // this very layout.
        unsafe { std::alloc::dealloc(ptr as u32 as usize as *mut u8, layout) }
    }
}

/// `init(ptr, len)`: reads the config and builds the filter into `slot`.
///
/// # Safety
/// `ptr` must point to `len` readable bytes that stay untouched during the call.
pub unsafe fn init<F: Filter>(slot: &'static Slot<F>, ptr: i32, len: i32) -> i64 {
    // SAFETY: per this function's contract.
    let input = unsafe { input(ptr, len) };
    let outcome = std::str::from_utf8(input)
        .map_err(|e| Error::from(e).context("config: not UTF-8"))
        .and_then(|config| init_slot(slot, config));
    match outcome {
        Ok(()) => pack(&KEEP_RESULT),
        Err(error) => answer(ERROR, &[error.message().as_bytes()]),
    }
}

/// `filter(ptr, len)`: asks the filter in `slot` about one document.
///
/// # Safety
/// As for [`init`].
pub unsafe fn filter<F: Filter>(slot: &'static Slot<F>, ptr: i32, len: i32) -> i64 {
    // SAFETY: per this function's contract.
    let input = unsafe { input(ptr, len) };
    let outcome = std::str::from_utf8(input)
        .map_err(|e| Error::from(e).context("the document is not UTF-8"))
        .and_then(|document| filter_slot(slot, document));
    encode(outcome)
}

/// The bytes kwex lent for this call.
///
/// # Safety
/// `ptr` must point to `len` readable bytes that outlive the returned slice.
unsafe fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
    let len = len as u32 as usize;
    if ptr == 0 || len == 0 {
        return &[];
    }
    // SAFETY: per this function's contract; `ptr` is not null.
    unsafe { std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len) }
}

/// Writes a verdict as ABI.md section 5 encodes it.
fn encode(outcome: Result<Verdict>) -> i64 {
    match outcome {
        Ok(Verdict::Keep) => pack(&KEEP_RESULT),
        Ok(Verdict::Drop) => pack(&DROP_RESULT),
        Ok(Verdict::Replace(json)) => answer(REPLACE, &[json.as_bytes()]),
        Ok(Verdict::Route {
            index,
            document: None,
        }) => answer(ROUTE, &[index.as_bytes()]),
        Ok(Verdict::Route {
            index,
            document: Some(json),
        }) => answer(ROUTE, &[index.as_bytes(), b"\n", json.as_bytes()]),
        Err(error) => answer(ERROR, &[error.message().as_bytes()]),
    }
}

/// Stores `code` and `parts` as the result and returns it packed.
fn answer(code: u8, parts: &[&[u8]]) -> i64 {
    RESULT.with_borrow_mut(|out| {
        out.clear();
        out.reserve(1 + parts.iter().map(|p| p.len()).sum::<usize>());
        out.push(code);
        for part in parts {
            out.extend_from_slice(part);
        }
        pack(out)
    })
}

/// `ptr << 32 | len`, the i64 that `init` and `filter` return.
fn pack(result: &[u8]) -> i64 {
    (((result.as_ptr() as usize as u64) << 32) | result.len() as u64) as i64
}
