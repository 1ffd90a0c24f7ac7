//! A filter written with Rust's std and built for wasm32-wasip1, as a filter
//! author would: it prints with `println!`/`eprintln!`, uses a `HashMap`
//! (whose seed comes from `random_get`) and reads an environment variable.
//! It proves that the host's WASI preview 1 stubs satisfy the imports a real
//! toolchain makes, and that `_initialize` (exported by Rust reactors) runs.
//! Calls `std::process::exit(3)` on a hostile document.

use std::collections::HashMap;

guest_util::abi_v1!();

/// Prints, counts bytes in a map, and keeps the document.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile") {
        std::process::exit(3);
    }
    let mut counts: HashMap<u8, usize> = HashMap::new();
    for &b in doc {
        *counts.entry(b).or_default() += 1;
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "unset".into());
    println!(
        "wasip1-std saw {len} bytes, {} distinct, HOME {home}",
        counts.len()
    );
    eprintln!("wasip1-std says hello on stderr");
    guest_util::keep()
}
