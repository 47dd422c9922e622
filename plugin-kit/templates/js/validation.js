// {{name}}: a validation plugin for polyscale:plugin@1.0.0 (see
// wit/plugin.wit).
//
// As generated: at most the setting `max` (default 10) units a line; each
// line above it gets a MAX_QUANTITY violation.
//
// WIT s64 values are BigInt (`10n`). The component has no WASI: log with
// `log`, not console.

import { write as log } from "polyscale:plugin/log@1.0.0";

export const validator = {
  validate(cart) {
    let max = 10n;
    const setting = cart.settings.find((s) => s.name === "max");
    if (setting !== undefined) {
      if (/^\s*\d+\s*$/.test(setting.value) && BigInt(setting.value.trim()) >= 1n) {
        max = BigInt(setting.value.trim());
      } else {
        log(`setting max: ${JSON.stringify(setting.value)} is not a whole number of at least 1; using 10`);
      }
    }
    const violations = [];
    cart.lines.forEach((line, index) => {
      if (line.quantity > max) {
        violations.push({
          code: "MAX_QUANTITY",
          message: `At most ${max} units a line (${line.quantity} asked)`,
          target: `lines[${index}].quantity`,
        });
      }
    });
    return violations;
  },
};
