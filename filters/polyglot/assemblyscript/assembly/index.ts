// The polyglot reference filter in AssemblyScript, for the kwex core-module
// ABI v1 (guest-sdk/ABI.md). See ../README.md for the behaviour.
//
// A small JSON parser of its own, working on the UTF-8 bytes: it validates
// the whole input (RFC 8259 grammar), decodes the strings it needs (with
// \uXXXX escapes and surrogate pairs) and skips the others. Nesting is
// limited to MAX_DEPTH. Input buffers come from the raw heap (heap.alloc),
// outside the garbage collector.
//
// Build: see ../build.sh (asc --runtime incremental --use abort=).

const MAX_DEPTH = 128;

const KEEP: u8 = 0x00;
const DROP: u8 = 0x01;
const ROUTE: u8 = 0x03;
const ERROR: u8 = 0x04;

// ------------------------------------------------------------- results --

// Results are kept reachable here until the next call.
let resultBuf: ArrayBuffer = new ArrayBuffer(1);
const keepBuf: ArrayBuffer = verdictOf(KEEP, "");
const dropBuf: ArrayBuffer = verdictOf(DROP, "");

function verdictOf(code: u8, text: string): ArrayBuffer {
  const payload = String.UTF8.encode(text);
  const buf = new ArrayBuffer(1 + payload.byteLength);
  store<u8>(changetype<usize>(buf), code);
  memory.copy(changetype<usize>(buf) + 1, changetype<usize>(payload), payload.byteLength);
  return buf;
}

function result(buf: ArrayBuffer): i64 {
  return ((<u64>changetype<usize>(buf)) << 32 | <u64>buf.byteLength) as i64;
}

function fail(message: string): i64 {
  resultBuf = verdictOf(ERROR, message);
  return result(resultBuf);
}

// ---------------------------------------------------------- JSON parser --

class Parser {
  p: usize;
  end: usize;
  depth: i32 = 0;
  ok: bool = true;

  constructor(ptr: usize, len: usize) {
    this.p = ptr;
    this.end = ptr + len;
  }

  peek(): i32 {
    return this.p < this.end ? <i32>load<u8>(this.p) : -1;
  }

  // Marks a syntax error and returns false, for `return this.error()`.
  error(): bool {
    this.ok = false;
    return false;
  }

  skipWs(): void {
    while (this.p < this.end) {
      const c = load<u8>(this.p);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.p++;
    }
  }

  hex4(): i32 {
    if (this.end - this.p < 4) return -1;
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = <i32>load<u8>(this.p + i);
      let d: i32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      else return -1;
      v = (v << 4) | d;
    }
    this.p += 4;
    return v;
  }

  // Parses a string at '"'. Returns its value when `decode`, else "" (the
  // string is then only validated). Sets ok = false on a syntax error.
  string(decode: bool): string {
    if (this.peek() != 0x22) { this.error(); return ""; }
    this.p++;
    let out = "";
    while (true) {
      const run = this.p;
      while (this.p < this.end) {
        const c = load<u8>(this.p);
        if (c == 0x22 || c == 0x5c || c < 0x20) break;
        this.p++;
      }
      if (decode && this.p > run) out += String.UTF8.decodeUnsafe(run, this.p - run);
      if (this.p >= this.end || load<u8>(this.p) < 0x20) { this.error(); return ""; }
      if (load<u8>(this.p) == 0x22) { this.p++; return out; }
      this.p++; // the backslash
      if (this.p >= this.end) { this.error(); return ""; }
      const e = load<u8>(this.p++);
      let unit: i32;
      switch (e) {
        case 0x22: unit = 0x22; break;   // \"
        case 0x5c: unit = 0x5c; break;   // \\
        case 0x2f: unit = 0x2f; break;   // \/
        case 0x62: unit = 0x08; break;   // \b
        case 0x66: unit = 0x0c; break;   // \f
        case 0x6e: unit = 0x0a; break;   // \n
        case 0x72: unit = 0x0d; break;   // \r
        case 0x74: unit = 0x09; break;   // \t
        case 0x75: {                      // \uXXXX: a UTF-16 code unit, as in JS
          unit = this.hex4();
          if (unit < 0) { this.error(); return ""; }
          break;
        }
        default: { this.error(); return ""; }
      }
      if (decode) out += String.fromCharCode(unit);
    }
    return out; // not reached
  }

  number(): bool {
    if (this.peek() == 0x2d) this.p++;
    const first = this.peek();
    if (first == 0x30) this.p++;
    else if (first >= 0x31 && first <= 0x39) this.digits();
    else return this.error();
    if (this.peek() == 0x2e) {
      this.p++;
      if (!isDigit(this.peek())) return this.error();
      this.digits();
    }
    const e = this.peek();
    if (e == 0x65 || e == 0x45) {
      this.p++;
      const s = this.peek();
      if (s == 0x2b || s == 0x2d) this.p++;
      if (!isDigit(this.peek())) return this.error();
      this.digits();
    }
    return true;
  }

  digits(): void {
    while (isDigit(this.peek())) this.p++;
  }

  literal(word: string): bool {
    const n = <usize>word.length;
    if (this.end - this.p < n) return this.error();
    for (let i: usize = 0; i < n; i++) {
      if (<i32>load<u8>(this.p + i) != word.charCodeAt(<i32>i)) return this.error();
    }
    this.p += n;
    return true;
  }

  // Validates and skips one value (no leading whitespace).
  skipValue(): bool {
    switch (this.peek()) {
      case 0x7b: return this.object(null);
      case 0x5b: return this.array();
      case 0x22: { this.string(false); return this.ok; }
      case 0x74: return this.literal("true");
      case 0x66: return this.literal("false");
      case 0x6e: return this.literal("null");
      default: return this.number();
    }
  }

  array(): bool {
    if (++this.depth > MAX_DEPTH) return this.error();
    this.p++; // '['
    this.skipWs();
    if (this.peek() == 0x5d) { this.p++; this.depth--; return true; }
    while (true) {
      this.skipWs();
      if (!this.skipValue()) return false;
      this.skipWs();
      const c = this.peek();
      if (c == 0x2c) { this.p++; continue; }
      if (c == 0x5d) { this.p++; this.depth--; return true; }
      return this.error();
    }
  }

  // Walks an object at '{'. For each member, `visitor.member` gets the key
  // and must consume the value; without a visitor, values are skipped.
  object(visitor: Visitor | null): bool {
    if (this.peek() != 0x7b) return this.error();
    if (++this.depth > MAX_DEPTH) return this.error();
    this.p++;
    this.skipWs();
    if (this.peek() == 0x7d) { this.p++; this.depth--; return true; }
    while (true) {
      this.skipWs();
      const key = this.string(visitor != null);
      if (!this.ok) return false;
      this.skipWs();
      if (this.peek() != 0x3a) return this.error();
      this.p++;
      this.skipWs();
      const consumed = visitor != null ? visitor.member(this, key) : this.skipValue();
      if (!consumed) return this.error();
      this.skipWs();
      const c = this.peek();
      if (c == 0x2c) { this.p++; continue; }
      if (c == 0x7d) { this.p++; this.depth--; return true; }
      return this.error();
    }
  }
}

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

abstract class Visitor {
  abstract member(ps: Parser, key: string): bool;
}

// --------------------------------------------------------------- config --

// Namespace -> result bytes (0x03 then the index name).
let routes = new Map<string, ArrayBuffer>();

class RoutesVisitor extends Visitor {
  badKey: string | null = null;
  member(ps: Parser, key: string): bool {
    if (ps.peek() != 0x22) {
      if (this.badKey == null) this.badKey = key;
      return ps.skipValue();
    }
    const index = ps.string(true);
    if (!ps.ok) return false;
    routes.set(key, verdictOf(ROUTE, index));
    return true;
  }
}

class ConfigVisitor extends Visitor {
  routesNotObject: bool = false;
  badKey: string | null = null;
  member(ps: Parser, key: string): bool {
    if (key != "routes") return ps.skipValue();
    routes = new Map<string, ArrayBuffer>(); // a repeated key: the last one counts
    this.badKey = null;
    if (ps.peek() != 0x7b) {
      this.routesNotObject = true;
      return ps.skipValue();
    }
    this.routesNotObject = false;
    const v = new RoutesVisitor();
    const ok = ps.object(v);
    this.badKey = v.badKey;
    return ok;
  }
}

export function kwex_abi_v1(): void {}

export function alloc(len: u32): usize {
  return heap.alloc(<usize>len);
}

export function dealloc(ptr: usize, len: u32): void {
  heap.free(ptr);
}

export function init(ptr: usize, len: u32): i64 {
  routes = new Map<string, ArrayBuffer>();
  const ps = new Parser(ptr, len);
  ps.skipWs();
  const first = ps.peek();
  const config = new ConfigVisitor();
  const ok = first == 0x7b ? ps.object(config) : ps.skipValue();
  ps.skipWs();
  let res = result(keepBuf);
  if (!ok || ps.p != ps.end) res = fail("config: not valid JSON");
  else if (first != 0x7b && first != 0x6e) res = fail("config: expected a JSON object or null");
  else if (config.routesNotObject) res = fail("config: \"routes\" must be an object mapping namespaces to index names");
  else if (config.badKey != null) res = fail("config: the index for namespace \"" + config.badKey! + "\" must be a string");
  if (res != result(keepBuf)) routes = new Map<string, ArrayBuffer>();
  return res;
}

// --------------------------------------------------------------- filter --

class MetadataVisitor extends Visitor {
  ns: string | null = null;
  member(ps: Parser, key: string): bool {
    if (key != "namespace") return ps.skipValue();
    if (ps.peek() == 0x22) {
      this.ns = ps.string(true);
      return ps.ok;
    }
    this.ns = null;
    return ps.skipValue();
  }
}

class DocVisitor extends Visitor {
  type: string | null = null;
  ns: string | null = null;
  member(ps: Parser, key: string): bool {
    if (key == "type") {
      if (ps.peek() == 0x22) {
        this.type = ps.string(true);
        return ps.ok;
      }
      this.type = null;
      return ps.skipValue();
    }
    if (key == "metadata") {
      this.ns = null; // a repeated key: the last one counts
      if (ps.peek() != 0x7b) return ps.skipValue();
      const v = new MetadataVisitor();
      const ok = ps.object(v);
      this.ns = v.ns;
      return ok;
    }
    return ps.skipValue();
  }
}

export function filter(ptr: usize, len: u32): i64 {
  const ps = new Parser(ptr, len);
  ps.skipWs();
  const isObject = ps.peek() == 0x7b;
  const doc = new DocVisitor();
  const ok = isObject ? ps.object(doc) : ps.skipValue();
  ps.skipWs();
  if (!ok || ps.p != ps.end) return fail("document: not valid JSON");
  if (!isObject) return fail("document: not a JSON object");
  const type = doc.type;
  if (type == null || type != "Warning") return result(dropBuf);
  const ns = doc.ns;
  if (ns != null && routes.has(ns)) return result(routes.get(ns));
  return result(keepBuf);
}
