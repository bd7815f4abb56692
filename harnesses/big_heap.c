/* big_heap.c - a large, fully touched heap built before the snapshot, and a run that
 * dirties only a few pages of it: the case snapshot mode is made for, and a check that
 * the restore really puts those pages back.
 *
 * Init (before FORKSERVER_INIT): mallocs BIG_HEAP_MB MiB (environment; 0, the default,
 * means the smallest heap a run can work on: 16 pages), page aligned, and fills page i
 * with the byte (i & 0xff) | 1. Every size does the same work per input and dirties the
 * same pages; only the resident size changes.
 *
 * Each run: verifies that some globals and the heap pages it is about to read still
 * hold their initial values (heap: the first page, the last page and the 8 pages picked
 * below, every byte), then writes the globals and exactly 8 distinct heap pages, picked
 * by a hash of the input. Prints nothing.
 *
 * Input (argv[1], or stdin when no argument is given; at most 1 MiB is read): any
 * bytes; they only choose which pages are written.
 *   exit 0   the run found pristine state (always so in fork mode, and in snapshot
 *            mode when the restore works)
 *   exit 42  a global or heap page was not back at its initial value: the previous run's
 *            writes were not undone. Running the same input twice without a restore
 *            shows it reliably (the globals are checked on every run).
 *   exit 2   BIG_HEAP_MB is not a number or the heap cannot be allocated (at init)
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INPUT (1u << 20)
#define PAGES_WRITTEN 8
#define EXIT_NOT_RESTORED 42
#define MIN_HEAP_PAGES 16

static unsigned char input[MAX_INPUT];

static unsigned char *heap;
static size_t page_size;
static size_t npages;

/* Globals every run checks and then overwrites. */
static unsigned long runs;
static unsigned char tag[8] = { 'p', 'r', 'i', 's', 't', 'i', 'n', 'e' };

/* Reads the input file (or stdin) into input[]; returns its length. */
static size_t read_input(int argc, char **argv)
{
    int fd = 0;
    if (argc >= 2) {
        fd = open(argv[1], O_RDONLY);
        if (fd < 0) {
            perror(argv[1]);
            exit(2);
        }
    }
    size_t len = 0;
    while (len < MAX_INPUT) {
        ssize_t n = read(fd, input + len, MAX_INPUT - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (fd != 0)
        close(fd);
    return len;
}

/* Initial byte of every page; odd, so pattern ^ 0xff never equals it. */
static unsigned char pattern(size_t page)
{
    return (unsigned char)((page & 0xff) | 1);
}

static void init_heap(void)
{
    const char *env = getenv("BIG_HEAP_MB");
    unsigned long long mb = 0;
    if (env && *env) {
        char *end;
        errno = 0;
        mb = strtoull(env, &end, 10);
        if (errno || *end || env[0] == '-' || mb > (SIZE_MAX >> 20)) {
            fprintf(stderr, "big_heap: BIG_HEAP_MB=%s is not a size in MiB\n", env);
            exit(2);
        }
    }
    /* 0 MiB still gets the smallest heap a run can work on, so that every size does
     * the same work and dirties the same pages: only the RSS changes. */
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = mb ? (size_t)mb << 20 : MIN_HEAP_PAGES * page_size;
    heap = aligned_alloc(page_size, size);
    if (!heap) {
        fprintf(stderr, "big_heap: cannot allocate %llu MiB\n", mb);
        exit(2);
    }
    npages = size / page_size;
    for (size_t i = 0; i < npages; i++)
        memset(heap + i * page_size, pattern(i), page_size);
}

static uint64_t fnv1a(const unsigned char *buf, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= buf[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Fills pick[] with distinct page indexes derived from seed; returns how many. */
static size_t choose_pages(uint64_t seed, size_t pick[PAGES_WRITTEN])
{
    if (npages <= PAGES_WRITTEN) {
        for (size_t i = 0; i < npages; i++)
            pick[i] = i;
        return npages;
    }
    uint64_t x = seed | 1; /* xorshift64 must not start at 0 */
    size_t n = 0;
    while (n < PAGES_WRITTEN) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t page = (size_t)(x % npages);
        size_t j = 0;
        while (j < n && pick[j] != page)
            j++;
        if (j == n)
            pick[n++] = page;
    }
    return n;
}

static int page_pristine(size_t page)
{
    const unsigned char *p = heap + page * page_size;
    unsigned char want = pattern(page);
    for (size_t i = 0; i < page_size; i++)
        if (p[i] != want)
            return 0;
    return 1;
}

static int run_one(const unsigned char *buf, size_t len)
{
    if (runs != 0 || memcmp(tag, "pristine", sizeof tag) != 0)
        return EXIT_NOT_RESTORED;

    uint64_t h = fnv1a(buf, len);
    runs++;
    memcpy(tag, &h, sizeof tag);

    if (!heap)
        return 0;

    size_t pick[PAGES_WRITTEN];
    size_t n = choose_pages(h, pick);

    /* Check everything before writing anything: the pages picked for this input are
     * exactly the ones a previous run of the same input dirtied. */
    if (!page_pristine(0) || !page_pristine(npages - 1))
        return EXIT_NOT_RESTORED;
    for (size_t i = 0; i < n; i++)
        if (!page_pristine(pick[i]))
            return EXIT_NOT_RESTORED;

    for (size_t i = 0; i < n; i++) {
        unsigned char *p = heap + pick[i] * page_size;
        size_t copy = len < 64 ? len : 64;
        memcpy(p + page_size / 2, buf, copy);
        /* at least one byte surely differs from the pattern */
        p[0] = pattern(pick[i]) ^ 0xff;
    }
    return 0;
}

int main(int argc, char **argv)
{
    init_heap();

    FORKSERVER_INIT();

    size_t len = read_input(argc, argv);
    return run_one(input, len);
}
