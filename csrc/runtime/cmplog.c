/* The comparison log of `forkserver build --cmplog` builds: the operands of the
 * program's integer comparisons and switches (clang's and gcc's trace-cmp hooks) and
 * of its string comparisons (memcmp, strcmp and kin, defined here in their place),
 * written into the orchestrator's shared table (struct fs_cmplog) while it is enabled.
 * Only cmplog builds link this file: other builds carry neither the hooks nor the
 * calls to them.
 *
 * The string functions compare byte by byte in plain C. A cmplog build runs only the
 * inputs being analysed, so speed matters less than never recursing: the C library's
 * own versions would have to be looked up, and the lookup itself compares strings.
 * This file is built with -fno-builtin, so the compiler cannot turn the loops back
 * into calls to the functions they define. */
#include <stddef.h>
#include <stdint.h>

#include "fs_protocol.h"
#include "fs_runtime.h"

#define CALLER ((uintptr_t)__builtin_return_address(0))

/* The runtime's own code: a cmplog build links it in a section of its own (build.py),
 * and the runtime's comparisons (reading /proc/self/maps after an mmap, say) are not
 * the program's. */
extern char __start_fs_runtime_text[] __attribute__((weak)), __stop_fs_runtime_text[] __attribute__((weak));
extern char __executable_start;

static inline int from_runtime(uintptr_t pc) {
    return pc >= (uintptr_t)__start_fs_runtime_text && pc < (uintptr_t)__stop_fs_runtime_text;
}

/* A call site as an offset into the program: the same in every run, whatever the
 * address layout, so sites (and the order a log is read in) do not vary. */
static inline uintptr_t site_of(uintptr_t pc) { return pc - (uintptr_t)&__executable_start; }

__attribute__((used)) const char fs_cmplog_build_marker[] = FS_SIG_CMPLOG;

static inline unsigned int_site(uintptr_t pc) { return (unsigned)((pc >> 4) ^ (pc >> 16)) & (FS_CMPLOG_INT_SITES - 1); }
static inline unsigned bytes_site(uintptr_t pc) { return (unsigned)((pc >> 4) ^ (pc >> 14)) & (FS_CMPLOG_BYTES_SITES - 1); }

/* The log, while it is on and the comparison at pc is the program's own. */
static inline struct fs_cmplog *program_log(uintptr_t pc) {
    struct fs_cmplog *log = fs_cmplog_log;
    if (!log || !log->enabled) return 0;
    return from_runtime(pc) ? 0 : log;
}

/* afl-fuzz -c's map (cmplog_aflpp.c), when afl-fuzz gave one */
static inline int aflpp_logs(uintptr_t pc) { return fs_aflpp_cmp_map && !from_runtime(pc); }

/* Both kinds: hits counts every execution of a site, the first slots keep operands. */
static inline void log_int(uintptr_t pc, uint64_t left, uint64_t right, unsigned size) {
    if (aflpp_logs(pc)) fs_aflpp_log_int(site_of(pc), left, right, size, 0);
    struct fs_cmplog *log = program_log(pc);
    if (!log) return;
    unsigned site = int_site(site_of(pc)), hit = log->int_hits[site]++;
    if (hit >= FS_CMPLOG_INT_SLOTS) return;
    struct fs_cmp_int *e = &log->ints[site][hit];
    e->left = left;
    e->right = right;
    e->size = size;
}

/* string: left and right are C strings, and a length short of the cap stops at a NUL */
static void log_bytes(uintptr_t pc, const unsigned char *left, size_t left_len, const unsigned char *right,
                      size_t right_len, int string) {
    if (aflpp_logs(pc)) /* AFL++ counts a C string's NUL */
        fs_aflpp_log_bytes(site_of(pc), left, left_len + (string && left_len < FS_CMPLOG_BYTES_MAX), right,
                           right_len + (string && right_len < FS_CMPLOG_BYTES_MAX), string);
    struct fs_cmplog *log = program_log(pc);
    if (!log) return;
    unsigned site = bytes_site(site_of(pc)), hit = log->bytes_hits[site]++;
    if (hit >= FS_CMPLOG_BYTES_SLOTS) return;
    struct fs_cmp_bytes *e = &log->bytes[site][hit];
    if (left_len > FS_CMPLOG_BYTES_MAX) left_len = FS_CMPLOG_BYTES_MAX;
    if (right_len > FS_CMPLOG_BYTES_MAX) right_len = FS_CMPLOG_BYTES_MAX;
    for (size_t i = 0; i < left_len; i++) e->left[i] = left[i];
    for (size_t i = 0; i < right_len; i++) e->right[i] = right[i];
    e->left_len = (unsigned char)left_len;
    e->right_len = (unsigned char)right_len;
}

/* ---- integer comparisons and switches ---- */

void __sanitizer_cov_trace_cmp1(uint8_t a, uint8_t b) { log_int(CALLER, a, b, 1); }
void __sanitizer_cov_trace_cmp2(uint16_t a, uint16_t b) { log_int(CALLER, a, b, 2); }
void __sanitizer_cov_trace_cmp4(uint32_t a, uint32_t b) { log_int(CALLER, a, b, 4); }
void __sanitizer_cov_trace_cmp8(uint64_t a, uint64_t b) { log_int(CALLER, a, b, 8); }
void __sanitizer_cov_trace_const_cmp1(uint8_t a, uint8_t b) { log_int(CALLER, a, b, 1); }
void __sanitizer_cov_trace_const_cmp2(uint16_t a, uint16_t b) { log_int(CALLER, a, b, 2); }
void __sanitizer_cov_trace_const_cmp4(uint32_t a, uint32_t b) { log_int(CALLER, a, b, 4); }
void __sanitizer_cov_trace_const_cmp8(uint64_t a, uint64_t b) { log_int(CALLER, a, b, 8); }

/* gcc also traces floating-point comparisons: their bits say nothing about input bytes */
void __sanitizer_cov_trace_cmpf(float a, float b) { (void)a, (void)b; }
void __sanitizer_cov_trace_cmpd(double a, double b) { (void)a, (void)b; }

/* cases: {count, width in bits, case values...}; each case is a site of its own */
void __sanitizer_cov_trace_switch(uint64_t value, uint64_t *cases) {
    uintptr_t pc = CALLER;
    if (!program_log(pc) && !aflpp_logs(pc)) return;
    unsigned size = (unsigned)(cases[1] / 8);
    if (size != 1 && size != 2 && size != 4 && size != 8) size = 8;
    for (uint64_t i = 0; i < cases[0]; i++) log_int(pc + (uintptr_t)i * 16, value, cases[2 + i], size);
}

/* ---- string comparisons ---- */

static size_t bounded_len(const char *s, size_t max) {
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    log_bytes(CALLER, x, n, y, n, 0);
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] - y[i];
    return 0;
}

int bcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    log_bytes(CALLER, x, n, y, n, 0);
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return 1;
    return 0;
}

int strcmp(const char *a, const char *b) {
    log_bytes(CALLER, (const unsigned char *)a, bounded_len(a, FS_CMPLOG_BYTES_MAX), (const unsigned char *)b,
              bounded_len(b, FS_CMPLOG_BYTES_MAX), 1);
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *x == *y) x++, y++;
    return *x - *y;
}

int strncmp(const char *a, const char *b, size_t n) {
    size_t cap = n < FS_CMPLOG_BYTES_MAX ? n : FS_CMPLOG_BYTES_MAX;
    log_bytes(CALLER, (const unsigned char *)a, bounded_len(a, cap), (const unsigned char *)b, bounded_len(b, cap), 1);
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) return x[i] - y[i];
        if (!x[i]) return 0;
    }
    return 0;
}

int strcasecmp(const char *a, const char *b) {
    log_bytes(CALLER, (const unsigned char *)a, bounded_len(a, FS_CMPLOG_BYTES_MAX), (const unsigned char *)b,
              bounded_len(b, FS_CMPLOG_BYTES_MAX), 1);
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && lower(*x) == lower(*y)) x++, y++;
    return lower(*x) - lower(*y);
}

int strncasecmp(const char *a, const char *b, size_t n) {
    size_t cap = n < FS_CMPLOG_BYTES_MAX ? n : FS_CMPLOG_BYTES_MAX;
    log_bytes(CALLER, (const unsigned char *)a, bounded_len(a, cap), (const unsigned char *)b, bounded_len(b, cap), 1);
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < n; i++) {
        if (lower(x[i]) != lower(y[i])) return lower(x[i]) - lower(y[i]);
        if (!x[i]) return 0;
    }
    return 0;
}

/* the needle is the side worth knowing; the haystack's head is what the input says */
void *memmem(const void *haystack, size_t hay_len, const void *needle, size_t needle_len) {
    const unsigned char *h = haystack, *n = needle;
    log_bytes(CALLER, h, hay_len < needle_len ? hay_len : needle_len, n, needle_len, 0);
    if (needle_len == 0) return (void *)h;
    for (size_t i = 0; i + needle_len <= hay_len; i++) {
        size_t k = 0;
        while (k < needle_len && h[i + k] == n[k]) k++;
        if (k == needle_len) return (void *)(h + i);
    }
    return 0;
}

char *strstr(const char *haystack, const char *needle) {
    size_t needle_len = bounded_len(needle, (size_t)-1);
    log_bytes(CALLER, (const unsigned char *)haystack, bounded_len(haystack, needle_len),
              (const unsigned char *)needle, needle_len, 0);
    for (const char *h = haystack;; h++) {
        size_t k = 0;
        while (k < needle_len && h[k] == needle[k]) k++;
        if (k == needle_len) return (char *)h;
        if (!*h) return 0;
    }
}
