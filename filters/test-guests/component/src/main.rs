//! Built for wasm32-wasip2, Rust produces a component, not a core module:
//! kwex must tell it apart by its header and refuse it (the component ABI
//! is not supported yet).

fn main() {
    println!("a component");
}
