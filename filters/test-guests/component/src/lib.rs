//! A filter component of the `kwex:filter@1.0.0` world, built for
//! `wasm32-wasip2` with `wit-bindgen` straight from `guest-sdk/wit/`.
//!
//! Behaves like the core test guests together: keeps `Warning`s, drops the
//! rest, and does what a marker in the document says, so one component can
//! exercise every path of the host's component ABI:
//!
//! | marker in the document | answer |
//! |---|---|
//! | `hostile-loop` | loops forever (the deadline must stop it) |
//! | `hostile-panic` | panics (a trap) |
//! | `hostile-alloc` | allocates until the memory cap |
//! | `hostile-json` | replaces the document with invalid JSON |
//! | `hostile-huge` | replaces it with a 50 MiB string |
//! | `hostile-error` | answers `err` |
//! | `hostile-print` | prints a line to stdout and to stderr, then keeps |
//! | `route-me` | routes to the config's `index` (default `routed`) |
//! | `replace-me` | replaces the document with `{"replaced":N}`, N the calls so far |
//!
//! `init` refuses a config object with `"reject": true`.

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit",
    world: "filter",
});

use std::cell::RefCell;

use kwex::filter::types::RouteTarget;

struct Component;

thread_local! {
    static INDEX: RefCell<String> = RefCell::new("routed".to_owned());
    static CALLS: RefCell<u64> = const { RefCell::new(0) };
}

impl Guest for Component {
    fn init(config: String) -> Result<(), String> {
        if config.contains("\"reject\":true") {
            return Err(format!("config {config} asks to be rejected"));
        }
        if let Some(at) = config.find("\"index\":\"") {
            let rest = &config[at + 9..];
            if let Some(end) = rest.find('"') {
                INDEX.with(|i| *i.borrow_mut() = rest[..end].to_owned());
            }
        }
        Ok(())
    }

    fn filter(document: String) -> Result<Verdict, String> {
        let calls = CALLS.with(|c| {
            *c.borrow_mut() += 1;
            *c.borrow()
        });
        if document.contains("hostile-loop") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if document.contains("hostile-panic") {
            panic!("the document asked for a panic");
        }
        if document.contains("hostile-alloc") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        if document.contains("hostile-json") {
            return Ok(Verdict::Replace("{\"unterminated\": ".to_owned()));
        }
        if document.contains("hostile-huge") {
            return Ok(Verdict::Replace("x".repeat(50 << 20)));
        }
        if document.contains("hostile-error") {
            return Err("the document asked for an error".to_owned());
        }
        if document.contains("hostile-print") {
            println!("a line on stdout");
            eprintln!("a line on stderr");
            return Ok(Verdict::Keep);
        }
        if document.contains("route-me") {
            return Ok(Verdict::Route(RouteTarget {
                index: INDEX.with(|i| i.borrow().clone()),
                document: None,
            }));
        }
        if document.contains("replace-me") {
            return Ok(Verdict::Replace(format!("{{\"replaced\":{calls}}}")));
        }
        if document.contains("\"type\":\"Warning\"") {
            Ok(Verdict::Keep)
        } else {
            Ok(Verdict::Drop)
        }
    }
}

export!(Component);
