// What Swift cannot import from jansson.h: its function-like macros and inline reference counting.
#ifndef CJANSSON_SHIM_H
#define CJANSSON_SHIM_H

#include <jansson.h>
#include <stddef.h>

/// The value's type tag (`json_typeof`).
json_type cjansson_typeof(const json_t *json);

/// Takes one more reference (`json_incref`).
json_t *cjansson_incref(json_t *json);

/// Drops one reference, freeing the value at zero (`json_decref`).
void cjansson_decref(json_t *json);

/// Encoder flags for compact one-line output of any value with `precision` significant digits for reals
/// (`JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision)`).
size_t cjansson_compact_flags(int precision);

/// Decoder flags: any top-level value, NUL allowed in strings, optionally rejecting duplicate keys.
size_t cjansson_decode_flags(int reject_duplicates);

/// Whether `value` printed with `%.<precision>g` reads back as the same double.
int cjansson_real_roundtrips(double value, int precision);

/// Frees memory jansson handed out (a `json_dumps` result) with jansson's own free function.
void cjansson_free(void *block);

/// Routes jansson's allocations through counting wrappers (malloc/free underneath), so leak checks can
/// ask how many jansson blocks the calling thread still holds. Safe to call more than once.
void cjansson_enable_allocation_counting(void);

/// Blocks jansson allocated minus blocks it freed, on the calling thread, since counting was enabled.
long cjansson_live_allocations(void);

#endif
