// {{name}}: a validation plugin for polyscale:plugin@1.0.0 (see
// wit/plugin.wit).
//
// As generated: at most 10 units a line; each line above gets a
// MAX_QUANTITY violation on `lines[i].quantity`.
//
// `validation.h` is generated from wit/plugin.wit at build time
// (`polyscale plugin build`, or `wit-bindgen c wit --world validation`).
// The cart is yours to free; the answer is malloc'ed and freed after the
// call. Use no libc I/O (printf, files, time, getenv): log with
// polyscale_plugin_log_write.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "validation.h"

#define MAX_UNITS 10

// Writes the decimal digits of `n` (>= 0) at `at`; returns the end.
static char *put_number(char *at, uint64_t n) {
    char digits[20];
    size_t len = 0;
    do {
        digits[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (len > 0) {
        *at++ = digits[--len];
    }
    return at;
}

void exports_polyscale_plugin_validator_validate(exports_polyscale_plugin_validator_cart_t *cart,
                                                 exports_polyscale_plugin_validator_list_violation_t *ret) {
    size_t count = cart->lines.len;
    ret->ptr = count ? calloc(count, sizeof(exports_polyscale_plugin_validator_violation_t)) : NULL;
    ret->len = 0;
    for (size_t i = 0; i < count; i++) {
        if (cart->lines.ptr[i].quantity <= MAX_UNITS) {
            continue;
        }
        exports_polyscale_plugin_validator_violation_t *violation = &ret->ptr[ret->len++];
        validation_string_dup(&violation->code, "MAX_QUANTITY");
        validation_string_dup(&violation->message, "At most 10 units a line");
        char target[48] = "lines[";
        char *end = put_number(target + strlen(target), i);
        strcpy(end, "].quantity");
        validation_string_dup(&violation->target, target);
    }
    exports_polyscale_plugin_validator_cart_free(cart);
}
