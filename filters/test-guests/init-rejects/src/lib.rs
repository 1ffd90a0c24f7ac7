//! Rejects every config in `init`, with a message the host must show.

guest_util::abi_v1!();

/// Always an error.
#[unsafe(no_mangle)]
pub extern "C" fn init(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let config = unsafe { guest_util::input(ptr, len) };
    let config = String::from_utf8_lossy(config);
    guest_util::error(&format!("config {config} has no \"threshold\""))
}

/// Would keep everything.
#[unsafe(no_mangle)]
pub extern "C" fn filter(_ptr: i32, _len: i32) -> i64 {
    guest_util::keep()
}
