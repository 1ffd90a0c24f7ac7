// `wasm-tools component embed` + `component new` with jco's wasm-tools (built
// to JavaScript), for the C filter's component (see ../build.sh): no
// `cargo install wasm-tools`.
//
//   node wasm-tools.mjs CORE.wasm WIT-FILE WORLD OUT.wasm
//
// The WIT goes in as text: jco's own `embed --wit PATH` fails here, as its
// WASI shim (preview2-shim 0.26) gives wasm-tools no preopened directory.
import { readFile, writeFile } from "node:fs/promises";
import { componentEmbed, componentNew } from "@bytecodealliance/jco-transpile/wasm-tools";

const [core, witFile, world, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node wasm-tools.mjs CORE.wasm WIT-FILE WORLD OUT.wasm");
  process.exit(2);
}
const embedded = await componentEmbed({
  binary: await readFile(core),
  witSource: await readFile(witFile, "utf8"),
  world,
});
await writeFile(out, await componentNew(embedded));
