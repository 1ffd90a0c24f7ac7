//! Everything the ABI asks for except `filter` (it exports `filtre`).

guest_util::abi_v1!();

/// Not the export the host looks for.
#[unsafe(no_mangle)]
pub extern "C" fn filtre(_ptr: i32, _len: i32) -> i64 {
    guest_util::keep()
}
