// {{name}}: a pricing plugin for polyscale:plugin@1.0.0 (see wit/plugin.wit).
//
// As generated: 10 % off every line, as a discount on the line's total,
// rounded down.
//
// `pricing.h` is generated from wit/plugin.wit at build time (`polyscale
// plugin build`, or `wit-bindgen c wit --world pricing`). The cart is
// yours to free; the answer is malloc'ed and freed after the call. Use no
// libc I/O (printf, files, time, getenv): log with
// polyscale_plugin_log_write.

#include <stdint.h>
#include <stdlib.h>

#include "pricing.h"

#define PERCENT 10

void exports_polyscale_plugin_pricer_price(exports_polyscale_plugin_pricer_cart_t *cart,
                                           exports_polyscale_plugin_pricer_list_adjustment_t *ret) {
    size_t count = cart->lines.len;
    ret->ptr = count ? calloc(count, sizeof(exports_polyscale_plugin_pricer_adjustment_t)) : NULL;
    ret->len = 0;
    for (size_t i = 0; i < count; i++) {
        polyscale_plugin_types_line_t *line = &cart->lines.ptr[i];
        // Unit prices and quantities are within s64; so is their product
        // for any real cart, but stay safe: skip what would overflow.
        if (line->unit_price.amount <= 0 || line->quantity > INT64_MAX / line->unit_price.amount) {
            continue;
        }
        int64_t total = line->unit_price.amount * line->quantity;
        int64_t off = total / 100 * PERCENT + total % 100 * PERCENT / 100;
        int64_t room = total > line->discount ? total - line->discount : 0;
        if (off > room) {
            off = room;
        }
        if (off <= 0) {
            continue;
        }
        exports_polyscale_plugin_pricer_adjustment_t *adjustment = &ret->ptr[ret->len++];
        adjustment->line = (uint32_t)i;
        adjustment->change.tag = POLYSCALE_PLUGIN_TYPES_CHANGE_DISCOUNT;
        adjustment->change.val.discount = off;
        pricing_string_dup(&adjustment->message, "10% off");
    }
    exports_polyscale_plugin_pricer_cart_free(cart);
}
