//! The core-module ABI v1, host side: what a module must export, how its
//! answers are encoded, and how they are checked before anything leaves the
//! sandbox. `guest-sdk/ABI.md` is the contract for filter authors; this file
//! is its implementation and the two must agree.
//!
//! Why this shape: every toolchain that makes core modules (Rust, C, Zig,
//! AssemblyScript, Go) can export functions taking and returning plain
//! integers and a memory, and nothing more is assumed. One `i64` carries a
//! pointer/length pair; the verdict is the first byte of the result, so a
//! result is always "some bytes in guest memory", whatever the verdict, and
//! `keep` costs the host one byte read.
//!
//! Nothing here touches wasmtime stores: checking a result is pure, so it is
//! unit-tested without a guest.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use wasmtime::{ExternType, Module, ValType};

use crate::filter::error::Failure;

/// The name of the version marker: an exported function `() -> ()`, never
/// called.
pub const MARKER: &str = "kwex_abi_v1";

/// Verdict code of `keep` (and of a successful `init`).
pub const KEEP: u8 = 0;
/// Verdict code of `drop`.
pub const DROP: u8 = 1;
/// Verdict code of `replace`.
pub const REPLACE: u8 = 2;
/// Verdict code of `route`.
pub const ROUTE: u8 = 3;
/// Verdict code of `error`.
pub const ERROR: u8 = 4;

/// Longest error message kept from a guest, in bytes; the rest is cut.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Longest index name the search clusters accept, in bytes.
const MAX_INDEX_BYTES: usize = 255;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A core module (`\0asm`, version 1, layer 0).
    CoreModule,
    /// A component (`\0asm`, layer 1).
    Component,
    /// Not WebAssembly (or a version of it wasmtime will not know).
    Unknown,
}

/// Tells a core module from a component by its header: the magic `\0asm`,
/// then a 16-bit version and a 16-bit layer (0 for core modules, 1 for
/// components; byte 6 is the low byte of the layer).
pub(crate) fn format(bytes: &[u8]) -> Format {
    match bytes {
        [0x00, 0x61, 0x73, 0x6d, _, _, 1, 0, ..] => Format::Component,
        [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ..] => Format::CoreModule,
        _ => Format::Unknown,
    }
}

/// The optional exports a module has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Exports {
    /// `dealloc(ptr: i32, len: i32)`.
    pub dealloc: bool,
    /// `init(ptr: i32, len: i32) -> i64`.
    pub init: bool,
    /// `_initialize()`.
    pub initialize: bool,
}

/// Value types of the ABI's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    I32,
    I64,
}

impl Ty {
    fn matches(self, v: &ValType) -> bool {
        match self {
            Ty::I32 => matches!(v, ValType::I32),
            Ty::I64 => matches!(v, ValType::I64),
        }
    }
}

/// A function signature, for checks and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sig {
    pub params: &'static [Ty],
    pub results: &'static [Ty],
}

impl Sig {
    /// Whether `ty` is exactly this signature.
    pub(crate) fn matches(&self, ty: &wasmtime::FuncType) -> bool {
        ty.params().len() == self.params.len()
            && ty.results().len() == self.results.len()
            && ty.params().zip(self.params).all(|(v, t)| t.matches(&v))
            && ty.results().zip(self.results).all(|(v, t)| t.matches(&v))
    }
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |tys: &[Ty]| {
            tys.iter()
                .map(|t| match t {
                    Ty::I32 => "i32",
                    Ty::I64 => "i64",
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "({}) -> ({})", list(self.params), list(self.results))
    }
}

/// A signature as wasmtime describes it, for messages.
pub(crate) fn describe(ty: &wasmtime::FuncType) -> String {
    let list = |tys: &mut dyn Iterator<Item = ValType>| {
        tys.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

const UNIT: Sig = Sig {
    params: &[],
    results: &[],
};
const ALLOC: Sig = Sig {
    params: &[Ty::I32],
    results: &[Ty::I32],
};
const DEALLOC: Sig = Sig {
    params: &[Ty::I32, Ty::I32],
    results: &[],
};
const CALL: Sig = Sig {
    params: &[Ty::I32, Ty::I32],
    results: &[Ty::I64],
};

/// Checks the module's exports against the ABI, listing every problem.
pub(crate) fn check_exports(module: &Module) -> Result<Exports, Vec<String>> {
    let mut problems = Vec::new();
    let mut func = |name: &str, sig: Sig, required: bool| -> bool {
        match module.get_export(name) {
            Some(ExternType::Func(ty)) if sig.matches(&ty) => true,
            Some(ExternType::Func(ty)) => {
                problems.push(format!(
                    "export `{name}` has type {}; the ABI wants {sig}",
                    describe(&ty)
                ));
                false
            }
            Some(_) => {
                problems.push(format!(
                    "export `{name}` is not a function; the ABI wants a function {sig}"
                ));
                false
            }
            None if required => {
                problems.push(format!(
                    "it does not export `{name}`, a function {sig} the ABI requires"
                ));
                false
            }
            None => false,
        }
    };

    let has_marker = module.get_export(MARKER).is_some();
    if has_marker {
        func(MARKER, UNIT, true);
    }
    func("alloc", ALLOC, true);
    func("filter", CALL, true);
    let exports = Exports {
        dealloc: func("dealloc", DEALLOC, false),
        init: func("init", CALL, false),
        initialize: func("_initialize", UNIT, false),
    };
    if !has_marker {
        let others: Vec<String> = module
            .exports()
            .map(|e| e.name())
            .filter(|n| n.starts_with("kwex_abi_"))
            .map(|n| format!("`{n}`"))
            .collect();
        problems.push(if others.is_empty() {
            format!(
                "it does not export the ABI version marker `{MARKER}` (a function () -> ()); \
                 see guest-sdk/ABI.md"
            )
        } else {
            format!(
                "it is built for ABI {}, which this kwex does not support (it supports `{MARKER}`)",
                others.join(", ")
            )
        });
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if m.is_64() => {
            problems.push("its memory is 64-bit; the ABI wants a 32-bit memory".into())
        }
        Some(ExternType::Memory(m)) if m.is_shared() => {
            problems.push("its memory is shared; the ABI wants an unshared memory".into())
        }
        Some(ExternType::Memory(_)) => {}
        Some(_) => problems.push("export `memory` is not a memory".into()),
        None => problems.push("it does not export its `memory`".into()),
    }
    if problems.is_empty() {
        Ok(exports)
    } else {
        Err(problems)
    }
}

/// Splits `filter`'s and `init`'s `i64` return value into the result's
/// pointer (high 32 bits) and length (low 32 bits).
pub(crate) fn unpack(value: i64) -> (u32, u32) {
    let value = value as u64;
    ((value >> 32) as u32, value as u32)
}

/// A result as the guest encoded it, borrowed from guest memory (or from the
/// copy the host made of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawVerdict<'a> {
    /// Code 0.
    Keep,
    /// Code 1.
    Drop,
    /// Code 2: the new document.
    Replace(&'a [u8]),
    /// Code 3: an index, and maybe a new document.
    Route {
        index: &'a [u8],
        body: Option<&'a [u8]>,
    },
    /// Code 4: a message.
    Error(&'a [u8]),
}

/// Decodes a result: its first byte is the verdict code, the rest the
/// payload. Checks the structure only; [`document`] and [`index`] check the
/// contents.
pub(crate) fn decode(result: &[u8]) -> Result<RawVerdict<'_>, Failure> {
    let Some((&code, payload)) = result.split_first() else {
        return Err(Failure::EmptyResult);
    };
    let empty = |verdict| {
        if payload.is_empty() {
            Ok(())
        } else {
            Err(Failure::UnexpectedPayload {
                verdict,
                len: payload.len(),
            })
        }
    };
    match code {
        KEEP => empty("keep").map(|()| RawVerdict::Keep),
        DROP => empty("drop").map(|()| RawVerdict::Drop),
        REPLACE => Ok(RawVerdict::Replace(payload)),
        ROUTE => Ok(match payload.iter().position(|&b| b == b'\n') {
            Some(at) => RawVerdict::Route {
                index: &payload[..at],
                body: Some(&payload[at + 1..]),
            },
            None => RawVerdict::Route {
                index: payload,
                body: None,
            },
        }),
        ERROR => Ok(RawVerdict::Error(payload)),
        code => Err(Failure::UnknownVerdict {
            code,
            context: "filter",
        }),
    }
}

/// A guest's error message: lossy UTF-8, cut at [`MAX_MESSAGE_BYTES`].
pub(crate) fn message(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_MESSAGE_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX_MESSAGE_BYTES {
        text.push('…');
    }
    text
}

/// Checks that a new document is UTF-8 text holding exactly one JSON object.
///
/// The JSON is parsed but nothing is built (every value is skipped), so the
/// check costs about one pass over the bytes.
pub(crate) fn document(bytes: &[u8]) -> Result<(), Failure> {
    let text = std::str::from_utf8(bytes).map_err(|e| Failure::InvalidUtf8(e.to_string()))?;
    serde_json::from_str::<JsonObject>(text)
        .map(|_| ())
        .map_err(|e| Failure::InvalidJson(e.to_string()))
}

/// Deserializes only from a JSON object, skipping its contents.
struct JsonObject;

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JsonObject)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Checks an index name from `route` against the rules OpenSearch and
/// Elasticsearch apply, so that a bad name fails here, under the filter's
/// policy, rather than as a per-item 400 in the sink.
pub(crate) fn index(bytes: &[u8]) -> Result<String, Failure> {
    let invalid = |reason| Failure::InvalidIndex {
        index: message(&bytes[..bytes.len().min(MAX_INDEX_BYTES + 1)]),
        reason,
    };
    let name = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8"))?;
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_INDEX_BYTES {
        return Err(invalid("longer than 255 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("`.` and `..` are not index names"));
    }
    if name.starts_with('.') {
        return Err(invalid(
            "names starting with `.` are hidden or system indices",
        ));
    }
    if name.starts_with(['-', '_', '+']) {
        return Err(invalid("starts with `-`, `_` or `+`"));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(invalid("has uppercase letters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(c))
    {
        return Err(invalid(
            "has a space, a control character, or one of \\ / * ? \" < > | , # :",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_header_tells_a_component_from_a_core_module() {
        assert_eq!(format(b"\0asm\x01\0\0\0rest"), Format::CoreModule);
        assert_eq!(format(b"\0asm\x0d\0\x01\0rest"), Format::Component);
        assert_eq!(format(b"\0asm\x02\0\0\0"), Format::Unknown);
        assert_eq!(format(b"\x7fELF\x02\x01\x01\0"), Format::Unknown);
        assert_eq!(format(b"\0as"), Format::Unknown);
    }

    #[test]
    fn the_i64_splits_into_pointer_high_and_length_low() {
        assert_eq!(unpack(0x0001_0000_0000_0010), (0x1_0000, 0x10));
        assert_eq!(unpack(-1), (u32::MAX, u32::MAX));
        assert_eq!(unpack(0x7fff_fff0_8000_0001), (0x7fff_fff0, 0x8000_0001));
    }

    #[test]
    fn each_verdict_decodes() {
        assert_eq!(decode(&[KEEP]).unwrap(), RawVerdict::Keep);
        assert_eq!(decode(&[DROP]).unwrap(), RawVerdict::Drop);
        assert_eq!(
            decode(b"\x02{}").unwrap(),
            RawVerdict::Replace(b"{}".as_slice())
        );
        assert_eq!(
            decode(b"\x03audit").unwrap(),
            RawVerdict::Route {
                index: b"audit".as_slice(),
                body: None
            }
        );
        assert_eq!(
            decode(b"\x03audit\n{\"a\":1}").unwrap(),
            RawVerdict::Route {
                index: b"audit".as_slice(),
                body: Some(b"{\"a\":1}".as_slice())
            }
        );
        assert_eq!(
            decode(b"\x04bad").unwrap(),
            RawVerdict::Error(b"bad".as_slice())
        );
    }

    #[test]
    fn malformed_results_are_refused() {
        assert_eq!(decode(&[]), Err(Failure::EmptyResult));
        assert!(matches!(
            decode(&[9]),
            Err(Failure::UnknownVerdict { code: 9, .. })
        ));
        assert!(matches!(
            decode(b"\x00x"),
            Err(Failure::UnexpectedPayload {
                verdict: "keep",
                len: 1
            })
        ));
    }

    #[test]
    fn a_new_document_must_be_one_utf8_json_object() {
        document(br#"{"a":[1,{"b":null}],"c":"\u00e9"}"#).unwrap();
        document(b" {} \n").unwrap();
        assert!(
            matches!(document(b"[1,2]"), Err(Failure::InvalidJson(m)) if m.contains("expected a JSON object"))
        );
        assert!(matches!(document(b"{\"a\":"), Err(Failure::InvalidJson(_))));
        assert!(
            matches!(document(b"{} {}"), Err(Failure::InvalidJson(m)) if m.contains("trailing"))
        );
        assert!(matches!(
            document(b"{\"a\":\"\xff\"}"),
            Err(Failure::InvalidUtf8(_))
        ));
        assert!(matches!(document(b""), Err(Failure::InvalidJson(_))));
    }

    #[test]
    fn index_names_follow_the_search_cluster_rules() {
        assert_eq!(
            index(b"kwex-audit-2026.11.25").unwrap(),
            "kwex-audit-2026.11.25"
        );
        for bad in [
            &b""[..],
            b".kibana",
            b"..",
            b"_x",
            b"Audit",
            b"a b",
            b"a/b",
            b"a:b",
            b"a\nb",
            b"\xff",
            &[b'a'; 256],
        ] {
            assert!(
                matches!(index(bad), Err(Failure::InvalidIndex { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn long_messages_are_cut() {
        let m = message(&[b'x'; 5000]);
        assert_eq!(m.len(), MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert_eq!(message(b"caf\xe9"), "caf\u{fffd}");
    }
}
