//! Inputs shared by the benchmarks in `benches/benches/`.
//!
//! The benchmarks measure kwex's per-event hot paths on realistic Events: the
//! example dump in `examples/events/` (the same generator also produces the
//! large inputs of the end-to-end runs, see BENCHMARKS.md).

use std::path::PathBuf;

pub mod stores;

/// The raw JSON of every Event in `examples/events/core-v1.json`, one per element.
pub fn example_events() -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/events/core-v1.json");
    let text = std::fs::read(&path).unwrap_or_default();
    let list: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| serde_json::to_vec(i).ok())
                .collect()
        })
        .unwrap_or_default()
}
