//! Imports three functions the sandbox does not provide: one from `env`,
//! one from a WASI 0.2 interface (`wasi:http`), and one that WASI preview 1
//! does not have. The host must refuse it at load, naming each.

guest_util::abi_v1!();

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn forbidden(x: i32) -> i32;
}

#[link(wasm_import_module = "wasi:http/outgoing-handler@0.2.0")]
unsafe extern "C" {
    #[link_name = "handle"]
    fn http_handle(request: i32, options: i32, ret: i32);
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn sock_open(family: i32, kind: i32, fd: i32) -> i32;
}

/// Uses the imports on a hostile document (so the linker keeps them).
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        // SAFETY: never runs: the host refuses this module at load.
        unsafe {
            forbidden(1);
            http_handle(0, 0, 0);
            sock_open(0, 0, 0);
        }
    }
    guest_util::keep()
}
