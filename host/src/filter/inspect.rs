//! `kwex filter inspect`: what a `.wasm` file is and what kwex would make of
//! it, before it is deployed.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::Module;
use wasmtime::component::Component;

use crate::filter::abi::{self, Format};
use crate::filter::chain::{Chain, FilterSpec};
use crate::filter::component;
use crate::filter::engine::Engine;
use crate::filter::error::LoadError;
use crate::filter::metrics::Metrics;

/// What a filter file is.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// "core module" or "component".
    pub format: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// Time to compile it (or to fetch it from the compiled-filter cache).
    pub compile_time: Duration,
    /// Import names (`module.name` for core modules).
    pub imports: Vec<String>,
    /// Export names.
    pub exports: Vec<String>,
    /// The ABI kwex found, or why it would refuse the file (every problem,
    /// and `init`'s answer to the config, when a config was given).
    pub verdict: Result<&'static str, String>,
}

/// Compiles `path` and checks it as kwex would load it, with `spec`'s
/// config, limits and grants.
pub fn inspect(engine: &Engine, spec: FilterSpec) -> Result<Inspection, LoadError> {
    let path: &Path = &spec.path;
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let compile_error = |e: wasmtime::Error| LoadError::Compile {
        name: spec.name.clone(),
        message: format!("{e:#}"),
    };
    let started = Instant::now();
    let (format, imports, exports) = match abi::format(&bytes) {
        Format::CoreModule => {
            let module = Module::new(engine.wasmtime(), &bytes).map_err(compile_error)?;
            let imports = module
                .imports()
                .map(|i| format!("{}.{}", i.module(), i.name()))
                .collect();
            let exports = module.exports().map(|e| e.name().to_owned()).collect();
            ("core module", imports, exports)
        }
        Format::Component => {
            let c = Component::new(engine.wasmtime(), &bytes).map_err(compile_error)?;
            (
                "component",
                component::imports(engine, &c),
                component::exports(engine, &c),
            )
        }
        Format::Unknown => {
            return Err(LoadError::NotWasm {
                name: spec.name.clone(),
            });
        }
    };
    let compile_time = started.elapsed();
    let metrics =
        Metrics::register(&prometheus::Registry::new()).map_err(|e| LoadError::Refused {
            name: spec.name.clone(),
            problems: vec![e.to_string()],
        })?;
    let verdict = match Chain::from_specs(engine, vec![spec], &metrics) {
        Ok(chain) => Ok(chain.abi(0).unwrap_or("unknown")),
        Err(e) => Err(e.to_string()),
    };
    Ok(Inspection {
        format,
        bytes: bytes.len() as u64,
        compile_time,
        imports,
        exports,
        verdict,
    })
}
