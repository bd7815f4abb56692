/* Where a libFuzzer-style harness finds its input when a fuzzer provides it: one
 * shared window, mapped before the snapshot, instead of a fresh heap copy per input.
 *
 * A heap copy lands in the allocator's size class for its length, and fuzzed lengths
 * spread over dozens of classes. Under ASan each input then wrote its copy, its shadow
 * and its class's free list on pages of their own, and a snapshot restore compared and
 * copied back all of them: most of the restore of an ASan ini_parser. The window is
 * MAP_SHARED, so no restore ever looks at its bytes, and every input uses the same pages.
 *
 * The harness sees what a heap copy would show it. Under ASan everything around the
 * input is poisoned as a heap redzone, so a read past its end is reported as the
 * heap-buffer-overflow it would be under libFuzzer (ASan then cannot name the block: it
 * is not one of its own). That poison is in ASan's shadow, private memory, so a restore,
 * or the end of a forked input, puts it back. The bytes past the input that a longer
 * input left behind are zeroed, so that uninstrumented code reading past the end sees
 * the same bytes whatever ran before. */
#include <stdint.h>
#include <sys/mman.h>

#include "fs_runtime.h"

extern void __asan_get_shadow_mapping(size_t *shadow_scale, size_t *shadow_offset) __attribute__((weak));
extern void __asan_init(void) __attribute__((weak));

#define ASAN_HEAP_REDZONE 0xfa     /* the shadow byte of a heap block's redzones */
#define LEFT_REDZONE 64            /* poisoned bytes before the input, as a block's left redzone */
#define CAPACITY FS_INPUT_AREA_SIZE /* no input the runtime passes on is longer */

/* Shared with every runner and forked input: what no restore may roll back. */
struct window_header {
    size_t written_end; /* bytes of the input area that may hold an earlier input's */
};

static unsigned char *window; /* the header's page, then the left redzone and the input */
static int poisoned; /* under ASan: the shadow marks the bytes around the input */
static size_t shadow_scale, shadow_offset;

static unsigned char *input_area(void) { return window + FS_PAGE_SIZE + LEFT_REDZONE; }

static size_t window_size(void) { return FS_PAGE_SIZE + LEFT_REDZONE + CAPACITY + FS_PAGE_SIZE; }

static unsigned char *shadow_of(const unsigned char *p) {
    return (unsigned char *)(((uintptr_t)p >> shadow_scale) + shadow_offset);
}

/* Marks [p, p + len) addressable, p granule-aligned: whole granules 0, a partial last
 * one the count of its bytes in use, as ASan marks the end of a block. */
static void unpoison(const unsigned char *p, size_t len) {
    size_t granule = (size_t)1 << shadow_scale, whole = len >> shadow_scale;
    fs_libc.memset(shadow_of(p), 0, whole);
    if (len & (granule - 1)) *shadow_of(p + whole * granule) = (unsigned char)(len & (granule - 1));
}

void fs_input_window_open(void) {
    int asan = __asan_init != NULL;
    if (asan && !__asan_get_shadow_mapping) return; /* no way to poison it: heap copies */
    void *p = mmap(NULL, window_size(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;
    window = p;
    if (asan) {
        __asan_get_shadow_mapping(&shadow_scale, &shadow_offset);
        size_t granule = (size_t)1 << shadow_scale;
        fs_libc.memset(shadow_of(window), ASAN_HEAP_REDZONE, window_size() / granule);
        poisoned = 1;
    }
}

const unsigned char *fs_input_window_fill(const unsigned char *data, size_t len) {
    if (!window || len > CAPACITY) return NULL;
    struct window_header *h = (struct window_header *)window;
    unsigned char *in = input_area();
    fs_libc.memcpy(in, data, len);
    if (h->written_end > len) fs_libc.memset(in + len, 0, h->written_end - len);
    h->written_end = len;
    if (poisoned) unpoison(in, len);
    return in;
}
