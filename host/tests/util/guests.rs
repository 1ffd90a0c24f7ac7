//! The test guests of `filters/test-guests/`, built once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the guests (once per test process) and returns their directory.
pub fn dir() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../filters/test-guests");
        let output = Command::new(root.join("build.sh"))
            .output()
            .expect("cannot run filters/test-guests/build.sh");
        assert!(
            output.status.success(),
            "filters/test-guests/build.sh failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
        root.join("out")
    })
}

/// The built guest `name` (`keep_warnings`, `component`, …).
pub fn guest(name: &str) -> PathBuf {
    let path = dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}
