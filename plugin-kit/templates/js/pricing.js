// {{name}}: a pricing plugin for polyscale:plugin@1.0.0 (see wit/plugin.wit).
//
// As generated: the setting `percent` (default 10) off every line, as a
// discount on the line's total, rounded down.
//
// WIT s64 values are BigInt (`10n`); a variant is `{ tag: "discount", val }`.
// The component has no WASI: log with `log`, not console.

import { write as log } from "polyscale:plugin/log@1.0.0";

export const pricer = {
  price(cart) {
    let percent = 10n;
    const setting = cart.settings.find((s) => s.name === "percent");
    if (setting !== undefined) {
      if (/^\s*\d+\s*$/.test(setting.value) && BigInt(setting.value.trim()) <= 100n) {
        percent = BigInt(setting.value.trim());
      } else {
        log(`setting percent: ${JSON.stringify(setting.value)} is not 0 to 100; using 10`);
      }
    }
    const adjustments = [];
    cart.lines.forEach((line, index) => {
      const total = line.unitPrice.amount * line.quantity;
      let off = (total * percent) / 100n;
      const room = total > line.discount ? total - line.discount : 0n;
      if (off > room) off = room;
      if (off > 0n) {
        adjustments.push({ line: index, change: { tag: "discount", val: off }, message: `${percent}% off` });
      }
    });
    return adjustments;
  },
};
