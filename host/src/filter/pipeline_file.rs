//! Where a chain comes from: a directory of `.wasm` files, or a pipeline
//! file (YAML) listing each filter with its config, policy, limits and
//! grants.
//!
//! `--filters PATH` takes either. A directory that holds a `pipeline.yaml`
//! (or `pipeline.yml`) is read through it, so one ConfigMap can carry the
//! filters and the file that orders them; without one, every `*.wasm` of the
//! directory runs in lexical file-name order with the global defaults.
//!
//! ```yaml
//! # pipeline.yaml: paths are relative to this file's directory
//! defaults:                 # optional; override the --filter-* flags
//!   policy: dead-letter     # pass | drop | dead-letter
//!   limits: { deadline: 5ms, memory: 16MiB }
//! filters:
//!   - path: warnings-only.wasm
//!     config: { keep: { types: [Warning] } }  # any YAML value, handed to init as JSON
//!   - name: redact                          # in logs and metrics; default: the file name
//!     path: redact.wasm
//!     policy: drop
//!     limits: { deadline: 20ms, memory: 64MiB, start-deadline: 5s, output: 2MiB }
//!     grants: { clock: true }               # the only grant: a real clock
//! ```
//!
//! Unknown keys are errors (a misspelt `polcy` would otherwise be ignored),
//! reported with their path in the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::filter::chain::FilterSpec;
use crate::filter::engine::{Engine, Grants, Limits, Policy};
use crate::filter::error::LoadError;

/// The file names looked for in a filter directory.
pub const PIPELINE_FILES: [&str; 2] = ["pipeline.yaml", "pipeline.yml"];

/// What `--filters` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSource {
    /// A directory: its pipeline file if it has one, else its `*.wasm`.
    Dir(PathBuf),
    /// A pipeline file.
    File(PathBuf),
}

impl ChainSource {
    /// A directory or a file, by what is at `path` now.
    pub fn at(path: &Path) -> ChainSource {
        if path.is_dir() {
            ChainSource::Dir(path.to_owned())
        } else {
            ChainSource::File(path.to_owned())
        }
    }

    /// The directory to watch for changes.
    pub fn dir(&self) -> &Path {
        match self {
            ChainSource::Dir(dir) => dir,
            ChainSource::File(file) => file.parent().unwrap_or(Path::new(".")),
        }
    }

    /// Reads the filter specs, in chain order. Reads files only: compiling
    /// is [`Chain::from_specs`](crate::filter::Chain::from_specs).
    pub fn specs(&self, engine: &Engine) -> Result<Vec<FilterSpec>, LoadError> {
        match self {
            ChainSource::File(file) => read_pipeline_file(engine, file),
            ChainSource::Dir(dir) => {
                for name in PIPELINE_FILES {
                    let file = dir.join(name);
                    if file.is_file() {
                        return read_pipeline_file(engine, &file);
                    }
                }
                Ok(list_dir(dir)?
                    .into_iter()
                    .map(|p| FilterSpec::new(engine, p))
                    .collect())
            }
        }
    }
}

/// Every `*.wasm` file of `dir`, in lexical (byte) order of file name.
///
/// Hidden files (starting with `.`) are skipped, and so are Kubernetes'
/// `..data` entries of a mounted ConfigMap; symbolic links are followed
/// (ConfigMap files are links into `..data/`).
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_dir = |source| LoadError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".wasm") {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => paths.push(path),
            Ok(_) => {}
            Err(source) => return Err(LoadError::Read { path, source }),
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths)
}

/// The pipeline file as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineFile {
    #[serde(default)]
    defaults: Defaults,
    filters: Vec<Entry>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    policy: Option<Policy>,
    #[serde(default)]
    limits: LimitsEntry,
    #[serde(default)]
    grants: Option<GrantsEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    path: PathBuf,
    name: Option<String>,
    #[serde(default)]
    config: serde_json::Value,
    policy: Option<Policy>,
    #[serde(default)]
    limits: LimitsEntry,
    grants: Option<GrantsEntry>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsEntry {
    #[serde(default, with = "humantime_serde_opt")]
    deadline: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    start_deadline: Option<Duration>,
    memory: Option<Size>,
    watermark: Option<Size>,
    output: Option<Size>,
    fuel: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsEntry {
    #[serde(default)]
    clock: bool,
}

impl LimitsEntry {
    /// `base` with what this entry sets. A memory cap set without a
    /// watermark moves the watermark to ¾ of it.
    fn apply(&self, mut base: Limits) -> Limits {
        if let Some(d) = self.deadline {
            base.deadline = d;
        }
        if let Some(d) = self.start_deadline {
            base.start_deadline = d;
        }
        if let Some(m) = &self.memory {
            base.memory_bytes = m.0;
            base.memory_watermark = m.0 / 4 * 3;
        }
        if let Some(w) = &self.watermark {
            base.memory_watermark = w.0;
        }
        if let Some(o) = &self.output {
            base.max_output_bytes = o.0;
        }
        if let Some(f) = self.fuel {
            base.fuel = Some(f);
        }
        base
    }
}

/// A byte size: a number, or a string with a unit (`512KiB`, `16MiB`,
/// `1GiB`, `2MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a size (e.g. 16MiB, 512KiB, 1048576)"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?}: use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        number
            .checked_mul(factor)
            .map(Size)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Size(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `Option<Duration>` from humantime text (`5ms`, `2s`).
mod humantime_serde_opt {
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t).map_err(|e| {
                serde::de::Error::custom(format!("{t:?} is not a duration ({e}); e.g. 5ms, 2s"))
            })
        })
        .transpose()
    }
}

/// Reads a pipeline file into specs, with paths resolved against its
/// directory.
fn read_pipeline_file(engine: &Engine, file: &Path) -> Result<Vec<FilterSpec>, LoadError> {
    let invalid = |problem: String| LoadError::PipelineFile {
        path: file.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        path: file.to_owned(),
        source,
    })?;
    // serde_yaml's messages carry the place: "filters[0]: unknown field
    // `polcy`, expected one of … at line 3 column 3".
    let parsed: PipelineFile = serde_yaml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let settings = engine.settings();
    let default_policy = parsed.defaults.policy.unwrap_or(settings.policy);
    let default_limits = parsed.defaults.limits.apply(settings.limits.clone());
    let default_grants = parsed.defaults.grants.clone();
    let mut specs = Vec::with_capacity(parsed.filters.len());
    for (i, entry) in parsed.filters.into_iter().enumerate() {
        let path = base.join(&entry.path);
        let mut spec = FilterSpec::new(engine, path);
        if let Some(name) = entry.name {
            if name.is_empty() {
                return Err(invalid(format!("filters[{i}].name: the name is empty")));
            }
            spec.name = name;
        }
        spec.config = entry.config;
        spec.policy = entry.policy.unwrap_or(default_policy);
        spec.limits = entry.limits.apply(default_limits.clone());
        let grants = entry.grants.or_else(|| default_grants.clone());
        if let Some(g) = grants {
            spec.grants = Grants { clock: g.clock };
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Settings;

    fn engine() -> Engine {
        Engine::new(Settings {
            max_instances: 2,
            ..Settings::default()
        })
        .unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kwex-pipeline-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_pipeline_file_sets_order_config_policy_limits_and_grants() {
        let dir = scratch("full");
        let file = write(
            &dir,
            "pipeline.yaml",
            "defaults:\n  policy: drop\n  limits: {deadline: 20ms}\nfilters:\n\
             - path: b.wasm\n  config: {keep: [Warning], n: 3}\n\
             - name: second\n  path: sub/a.wasm\n  policy: pass\n  limits: {memory: 64MiB, start-deadline: 5s, output: 2MiB}\n  grants: {clock: true}\n",
        );
        let specs = ChainSource::at(&dir).specs(&engine()).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].path, dir.join("b.wasm"));
        assert_eq!(specs[0].name, "b.wasm");
        assert_eq!(
            specs[0].config,
            serde_json::json!({"keep": ["Warning"], "n": 3})
        );
        assert_eq!(specs[0].policy, Policy::Drop);
        assert_eq!(specs[0].limits.deadline, Duration::from_millis(20));
        assert!(!specs[0].grants.clock);
        assert_eq!(specs[1].name, "second");
        assert_eq!(specs[1].path, dir.join("sub/a.wasm"));
        assert_eq!(specs[1].policy, Policy::Pass);
        assert_eq!(specs[1].limits.deadline, Duration::from_millis(20));
        assert_eq!(specs[1].limits.memory_bytes, 64 << 20);
        assert_eq!(specs[1].limits.memory_watermark, 48 << 20);
        assert_eq!(specs[1].limits.start_deadline, Duration::from_secs(5));
        assert_eq!(specs[1].limits.max_output_bytes, 2 << 20);
        assert!(specs[1].grants.clock);
        // The same file named directly.
        let again = ChainSource::at(&file).specs(&engine()).unwrap();
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn mistakes_in_a_pipeline_file_are_reported_with_their_place() {
        let dir = scratch("bad");
        let cases = [
            (
                "filters:\n- path: a.wasm\n  polcy: drop\n",
                "filters[0]: unknown field `polcy`",
            ),
            (
                "filters:\n- path: a.wasm\n  policy: maybe\n",
                "filters[0].policy: unknown variant `maybe`",
            ),
            (
                "filters:\n- path: a.wasm\n  limits: {memory: 16 lots}\n",
                "filters[0].limits: unknown unit",
            ),
            (
                "filters:\n- path: a.wasm\n  limits: {deadline: soon}\n",
                "filters[0].limits: \"soon\" is not a duration",
            ),
            ("filter: []\n", "unknown field `filter`"),
        ];
        for (text, needle) in cases {
            let file = write(&dir, "pipeline.yaml", text);
            let e = ChainSource::File(file.clone())
                .specs(&engine())
                .unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
            assert!(msg.contains("pipeline.yaml"), "{msg}");
        }
    }

    #[test]
    fn a_directory_without_a_pipeline_file_is_read_in_lexical_order() {
        let dir = scratch("plain");
        for name in ["20-b.wasm", "10-a.wasm", "notes.txt", ".hidden.wasm"] {
            write(&dir, name, "x");
        }
        let specs = ChainSource::at(&dir).specs(&engine()).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["10-a.wasm", "20-b.wasm"]);
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!("16MiB".parse(), Ok(Size(16 << 20)));
        assert_eq!("512KiB".parse(), Ok(Size(512 << 10)));
        assert_eq!("2MB".parse(), Ok(Size(2_000_000)));
        assert_eq!("1048576".parse(), Ok(Size(1 << 20)));
        assert!("16 lots".parse::<Size>().is_err());
        assert!("MiB".parse::<Size>().is_err());
    }
}
