"""{{name}}: a validation plugin for polyscale:plugin@1.0.0 (see wit/plugin.wit).

As generated: at most the setting `max` (default 10) units a line; each line
above it gets a MAX_QUANTITY violation.

The component has no WASI (it is built with --stub-wasi): print() and other
I/O trap. Log with log.write.
"""

from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import Cart, Violation


def setting(cart: Cart, name: str) -> str | None:
    return next((s.value for s in cart.settings if s.name == name), None)


class Validator(exports.Validator):
    def validate(self, cart: Cart) -> list[Violation]:
        maximum = 10
        value = setting(cart, "max")
        if value is not None:
            if value.strip().isdigit() and int(value) >= 1:
                maximum = int(value)
            else:
                log.write(f"setting max: {value!r} is not a whole number of at least 1; using 10")
        return [
            Violation(
                code="MAX_QUANTITY",
                message=f"At most {maximum} units a line ({line.quantity} asked)",
                target=f"lines[{index}].quantity",
            )
            for index, line in enumerate(cart.lines)
            if line.quantity > maximum
        ]
