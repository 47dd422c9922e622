// Runs plugin components transpiled by `jco transpile --instantiation async`
// once each on a cart, and prints one JSON line per case:
// {"name", "answer", "log"} or {"name", "error"}.
//
// Usage: node run-plugins.mjs CASES.json, where CASES.json is a list of
// {"name", "module" (the transpiled .js), "kind" ("pricing"|"validation"),
// "cart"}. WASI imports (Rust plugins) come from jco's Node.js shim; the
// plugin's `log` is captured.

import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as shim from "@bytecodealliance/preview2-shim";

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

// Money amounts, quantities and discounts are s64: BigInt on the way in.
function toWit(cart) {
  return {
    step: cart.step,
    merchantId: cart.merchantId,
    lines: cart.lines.map((l) => ({
      productId: l.productId,
      quantity: BigInt(l.quantity),
      unitPrice: { amount: BigInt(l.unitPrice.amount), currency: l.unitPrice.currency },
      discount: BigInt(l.discount),
    })),
    settings: cart.settings,
  };
}

// BigInt back to JSON numbers (the sample values are small).
const plain = (value) => JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v)));

const cases = JSON.parse(await readFile(process.argv[2], "utf8"));
for (const c of cases) {
  const log = [];
  try {
    const { instantiate } = await import(c.module);
    const imports = new Proxy(
      { "polyscale:plugin/log": { write: (message) => log.push(message) } },
      {
        get(own, name) {
          if (name in own) return own[name];
          const wasi = /^wasi:([a-z-]+)\/([a-z-]+)$/.exec(name);
          const found = wasi && shim[wasi[1]] && shim[wasi[1]][camel(wasi[2])];
          if (!found) throw new Error(`no import ${String(name)}`);
          return found;
        },
      },
    );
    const dir = dirname(c.module.replace(/^file:\/\//, ""));
    const root = await instantiate((path) => readFile(join(dir, path)).then((b) => WebAssembly.compile(b)), imports);
    const cart = toWit(c.cart);
    const answer = c.kind === "pricing" ? root.pricer.price(cart) : root.validator.validate(cart);
    console.log(JSON.stringify({ name: c.name, answer: plain(answer), log }));
  } catch (e) {
    console.log(JSON.stringify({ name: c.name, error: String((e && e.stack) || e), log }));
  }
}
