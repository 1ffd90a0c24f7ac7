// The polyglot reference filter in JavaScript: a component of the world
// kwex:filter@1.0.0 (guest-sdk/wit/filter.wit), built with
// `jco componentize --backend quickjs` (QuickJS, WASI stubbed out).
// See ../README.md for the behaviour.
//
// A `result` is an exception on the error side: throwing a string makes
// `err(string)`.

const KEEP = { tag: "keep" };
const DROP = { tag: "drop" };

// namespace -> route verdict
let routes = new Map();

function parse(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw `${what}: not valid JSON`;
  }
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function init(config) {
  routes = new Map();
  const value = parse(config, "config");
  if (value === null) return;
  if (!isObject(value)) throw "config: expected a JSON object or null";
  if (!Object.prototype.hasOwnProperty.call(value, "routes")) return;
  const table = value.routes;
  if (!isObject(table)) throw 'config: "routes" must be an object mapping namespaces to index names';
  const next = new Map();
  // Caveat: JS lists integer-like keys ("7") first, not in document order.
  for (const [ns, index] of Object.entries(table)) {
    if (typeof index !== "string") throw `config: the index for namespace "${ns}" must be a string`;
    next.set(ns, { tag: "route", val: { index, document: undefined } });
  }
  routes = next;
}

export function filter(document) {
  const doc = parse(document, "document");
  if (!isObject(doc)) throw "document: not a JSON object";
  if (doc.type !== "Warning") return DROP;
  const ns = isObject(doc.metadata) ? doc.metadata.namespace : undefined;
  if (typeof ns === "string" && routes.has(ns)) return routes.get(ns);
  return KEEP;
}
