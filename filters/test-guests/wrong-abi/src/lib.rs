//! A filter for an ABI version this kwex does not know: it exports
//! `kwex_abi_v2` instead of `kwex_abi_v1`.

guest_util::alloc_exports!();

/// The marker of a future ABI.
#[unsafe(no_mangle)]
pub extern "C" fn kwex_abi_v2() {}

/// Would keep everything.
#[unsafe(no_mangle)]
pub extern "C" fn filter(_ptr: i32, _len: i32) -> i64 {
    guest_util::keep()
}
