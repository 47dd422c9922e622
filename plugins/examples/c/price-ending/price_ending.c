// Example pricing plugin in C: prices that end in 99.
//
// Every unit price of at least 100 minor units that does not already end
// in 99 is lowered to the nearest price below it that does: 1250 -> 1199,
// 100 -> 99, 1299 stays. Prices under 100 are left alone. No settings.
//
// `pricing.h` is generated from the contract by `polyscale plugin build`
// (wit-bindgen's C generator); the component is made from this file alone.
// No libc I/O: the plugin must not import WASI.

#include <stdint.h>
#include <stdlib.h>

#include "pricing.h"

// The price ending in 99 at or below `price` (`price` >= 100).
static int64_t ends_in_99(int64_t price) {
    if (price % 100 == 99) {
        return price;
    }
    return price / 100 * 100 - 1;
}

void exports_polyscale_plugin_pricer_price(exports_polyscale_plugin_pricer_cart_t *cart,
                                           exports_polyscale_plugin_pricer_list_adjustment_t *ret) {
    size_t count = cart->lines.len;
    ret->ptr = count ? calloc(count, sizeof(exports_polyscale_plugin_pricer_adjustment_t)) : NULL;
    ret->len = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t price = cart->lines.ptr[i].unit_price.amount;
        if (price < 100 || ends_in_99(price) == price) {
            continue;
        }
        exports_polyscale_plugin_pricer_adjustment_t *adjustment = &ret->ptr[ret->len++];
        adjustment->line = (uint32_t)i;
        adjustment->change.tag = POLYSCALE_PLUGIN_TYPES_CHANGE_UNIT_PRICE;
        adjustment->change.val.unit_price = ends_in_99(price);
        pricing_string_dup(&adjustment->message, "Price ends in 99");
    }
    // The cart is ours to free.
    exports_polyscale_plugin_pricer_cart_free(cart);
}
