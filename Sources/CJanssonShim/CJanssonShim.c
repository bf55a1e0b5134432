#include "CJanssonShim.h"
#include <stdio.h>
#include <stdlib.h>

json_type cjansson_typeof(const json_t *json) { return json_typeof(json); }

json_t *cjansson_incref(json_t *json) { return json_incref(json); }

void cjansson_decref(json_t *json) { json_decref(json); }

size_t cjansson_compact_flags(int precision) {
    return JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision);
}

size_t cjansson_decode_flags(int reject_duplicates) {
    return JSON_DECODE_ANY | JSON_ALLOW_NUL | (reject_duplicates ? JSON_REJECT_DUPLICATES : 0);
}

int cjansson_real_roundtrips(double value, int precision) {
    char buffer[64];
    snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    return strtod(buffer, NULL) == value;
}

static __thread long live_allocations = 0;

static void *counting_malloc(size_t size) {
    void *block = malloc(size);
    if (block) live_allocations++;
    return block;
}

static void counting_free(void *block) {
    if (block) live_allocations--;
    free(block);
}

void cjansson_enable_allocation_counting(void) { json_set_alloc_funcs(counting_malloc, counting_free); }

long cjansson_live_allocations(void) { return live_allocations; }

void cjansson_free(void *block) {
    json_malloc_t malloc_fn;
    json_free_t free_fn;
    json_get_alloc_funcs(&malloc_fn, &free_fn);
    free_fn(block);
}
