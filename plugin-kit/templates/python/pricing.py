"""{{name}}: a pricing plugin for polyscale:plugin@1.0.0 (see wit/plugin.wit).

As generated: the setting `percent` (default 10) off every line, as a
discount on the line's total, rounded down.

The component has no WASI (it is built with --stub-wasi): print() and other
I/O trap. Log with log.write.
"""

from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import Adjustment, Cart, Change_Discount


def setting(cart: Cart, name: str) -> str | None:
    return next((s.value for s in cart.settings if s.name == name), None)


class Pricer(exports.Pricer):
    def price(self, cart: Cart) -> list[Adjustment]:
        percent = 10
        value = setting(cart, "percent")
        if value is not None:
            if value.strip().isdigit() and int(value) <= 100:
                percent = int(value)
            else:
                log.write(f"setting percent: {value!r} is not 0 to 100; using 10")
        adjustments = []
        for index, line in enumerate(cart.lines):
            total = line.unit_price.amount * line.quantity
            off = min(total * percent // 100, max(total - line.discount, 0))
            if off > 0:
                adjustments.append(Adjustment(line=index, change=Change_Discount(off), message=f"{percent}% off"))
        return adjustments
