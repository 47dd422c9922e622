// Example validation plugin: a minimum order value.
//
// The cart's value is the sum over its lines of unit price x quantity -
// discount, in minor units. Below the setting `minimum` (minor units,
// default 1000) the cart gets a `MINIMUM_ORDER` violation on the whole cart
// (target ""). A cart without lines is left alone; an invalid `minimum` is
// logged and the default is used.
//
// WIT s64 values are BigInt in JavaScript: all the arithmetic below is on
// BigInt.

import { write as log } from "polyscale:plugin/log@1.0.0";

const DEFAULT_MINIMUM = 1000n;

function minimumOf(settings) {
  const setting = settings.find((s) => s.name === "minimum");
  if (setting === undefined) return DEFAULT_MINIMUM;
  if (/^\s*\d+\s*$/.test(setting.value)) return BigInt(setting.value.trim());
  log(`setting minimum: ${JSON.stringify(setting.value)} is not a whole number of minor units; using ${DEFAULT_MINIMUM}`);
  return DEFAULT_MINIMUM;
}

export const validator = {
  validate(cart) {
    if (cart.lines.length === 0) return [];
    const minimum = minimumOf(cart.settings);
    let value = 0n;
    for (const line of cart.lines) {
      value += line.unitPrice.amount * line.quantity - line.discount;
    }
    if (value >= minimum) return [];
    const currency = cart.lines[0].unitPrice.currency;
    return [
      {
        code: "MINIMUM_ORDER",
        message: `The minimum order is ${minimum} ${currency} (minor units); this one is ${value}`,
        target: "",
      },
    ];
  },
};
