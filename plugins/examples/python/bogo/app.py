"""Example pricing plugin: buy one, get one free.

Every line with a quantity of 2 or more gets floor(quantity / 2) units free:
a `discount` of floor(quantity / 2) x unit price on the line's total, never
more than what earlier discounts left of it. No settings.
"""

from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import Adjustment, Cart, Change_Discount


def bogo_discount(unit_price: int, quantity: int, earlier: int) -> int:
    """What buy-one-get-one takes off a line (0 when nothing)."""
    if quantity < 2 or unit_price <= 0:
        return 0
    total = unit_price * quantity
    room = max(total - earlier, 0)
    return min(quantity // 2 * unit_price, room)


class Pricer(exports.Pricer):
    def price(self, cart: Cart) -> list[Adjustment]:
        adjustments = []
        for index, line in enumerate(cart.lines):
            off = bogo_discount(line.unit_price.amount, line.quantity, line.discount)
            if off > 0:
                free = line.quantity // 2
                adjustments.append(
                    Adjustment(
                        line=index,
                        change=Change_Discount(off),
                        message=f"Buy one, get one free ({free} free)",
                    )
                )
        if adjustments:
            log.write(f"bogo: {len(adjustments)} of {len(cart.lines)} lines discounted")
        return adjustments
