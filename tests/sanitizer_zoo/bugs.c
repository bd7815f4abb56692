/* Sanitizer bugs, one per input's first byte, built with --sanitize address,undefined.
 * The bugs do the same work on the same objects; only the selected one goes one step
 * wrong. Any other first byte but W is clean and must stay ok.
 *
 *   H  heap-buffer-overflow, WRITE of size 1 (one past a malloc'd block)
 *   R  heap-buffer-overflow, READ of size 1
 *   U  heap-use-after-free, READ
 *   D  attempting double-free
 *   S  stack-buffer-overflow by one, WRITE
 *   G  global-buffer-overflow by one, READ
 *   O  UBSan signed-integer-overflow
 *   L  UBSan shift exponent too large
 *   K  a leak of 24 bytes (reported only with leak detection)
 *   E  heap-buffer-overflow, READ of size 1, one past the input's end
 *   B  heap-buffer-overflow, READ of size 1, one before the input's start
 *   A  heap-buffer-overflow far into the heap: an 8 MiB block, written one past its end,
 *      so the allocator maps fresh memory and its shadow
 *   V  clean: a vfork child writes a page nothing else writes, which its parent then
 *      reads; the next V finds it zero again, or aborts
 *   M  clean: 4,096 blocks of one size, more than the allocator holds for that size at
 *      the start, so it maps more during the input
 *   P  clean: sets a byte of a block allocated before the snapshot, which the next P
 *      must find unset again, or abort
 *   N  clean: reseeds libc's random numbers and changes an initialised global, both in
 *      the small file-backed data of libc and of the program; the next N must find
 *      them as they were, or abort
 *   T  clean: the 64 bytes past the input's end, read as uninstrumented code would,
 *      are zero, whatever longer input ran before (the runtime's input window)
 *   W  one block of each of a few sizes the program never asked for before: in snapshot
 *      mode the allocator has memory for them already (the runtime's warm-up), in fork
 *      mode it maps more and W aborts (not one of the zoo's inputs: the modes differ)
 *
 * The second byte, when present, moves the overflow's index by that much within the
 * redzone, so that inputs of one kind still differ. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char table[16] = "0123456789abcdef";
static volatile int sink;
static volatile char vfork_page[4096] __attribute__((aligned(4096)));

/* ASan's count of the bytes its allocator has mapped */
size_t __sanitizer_get_heap_size(void) __attribute__((weak));

static volatile char *early_block; /* allocated before the fork server starts */
static volatile int data_global = 5; /* in the program's .data */
static int first_rand;               /* what rand() gives first, unseeded */

__attribute__((constructor)) static void note_first_rand(void) {
    first_rand = rand();
    srand(1); /* the unseeded state again */
}

__attribute__((constructor)) static void allocate_early_block(void) { early_block = calloc(1, 64); }

static int shift_by(uint8_t v) { return v; }

/* The leaked block's address must not stay in a register or a stack slot, where
 * LeakSanitizer's conservative scan would find it. */
static __attribute__((noinline)) void leak(size_t n) {
    volatile char *p = malloc(n);
    p[0] = 1;
}

static __attribute__((noinline)) void scrub_stack(void) {
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
}

/* Past the input's end, unchecked: ASan would rightly stop a checked read. */
__attribute__((no_sanitize("address"), noinline)) static int zero_after(const uint8_t *end, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (((const volatile uint8_t *)end)[i]) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t kind = size > 0 ? data[0] : 0;
    size_t extra = size > 1 ? data[1] % 8 : 0;
    volatile char *heap = malloc(16);
    memset((char *)heap, 'x', 16);
    char stack[16];
    memcpy(stack, table, sizeof stack);
    volatile char *vstack = stack;
    int acc = 0;

    switch (kind) {
    case 'H': heap[16 + extra] = 1; break;
    case 'R': acc += heap[16 + extra]; break;
    case 'U': free((char *)heap); acc += heap[extra]; heap = NULL; break;
    case 'D': free((char *)heap); free((char *)heap); heap = NULL; break;
    case 'S': vstack[16 + extra] = 1; break;
    case 'G': acc += ((volatile char *)table)[16 + extra]; break;
    case 'O': { volatile int big = 0x7fffffff; acc += big + 1 + (int)extra; } break;
    case 'L': acc += 1 << shift_by(32 + (uint8_t)extra); break;
    case 'K': leak(24); scrub_stack(); break;
    case 'E': acc += ((const volatile uint8_t *)data)[size]; break;
    case 'B': acc += ((const volatile uint8_t *)data)[-1]; break;
    case 'T':
        if (!zero_after(data + size, 64)) abort(); /* an earlier input's bytes showed */
        break;
    case 'A': {
        volatile char *big = malloc(8 << 20);
        big[0] = 1;
        big[(8 << 20) + extra] = 1;
        free((char *)big);
    } break;
    case 'V': {
        if (vfork_page[0]) abort(); /* the last V's write was not taken back */
        pid_t child = vfork();
        if (child == 0) {
            vfork_page[0] = 1; /* into the parent's memory */
            _exit(0);
        }
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || vfork_page[0] != 1) abort();
        acc += vfork_page[0];
    } break;
    case 'M': {
        static char *blocks[4096];
        for (int i = 0; i < 4096; i++) {
            blocks[i] = malloc(48);
            blocks[i][47] = (char)i;
        }
        for (int i = 0; i < 4096; i++) {
            acc += blocks[i][47];
            free(blocks[i]);
        }
    } break;
    case 'P':
        if (early_block[7]) abort(); /* the last P's write was not taken back */
        early_block[7] = 1;
        break;
    case 'N':
        if (rand() != first_rand || data_global != 5) abort(); /* the last N's changes were kept */
        srand(99);
        data_global = 6;
        break;
    case 'W': {
        static const size_t sizes[] = {200, 1000, 3000, 20000, 100000};
        size_t mapped = __sanitizer_get_heap_size();
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            volatile char *p = malloc(sizes[i]);
            p[0] = 1;
            free((char *)p);
        }
        if (__sanitizer_get_heap_size() != mapped) abort();
    } break;
    default:
        acc += heap[15] + vstack[15] + table[15];
    }
    free((char *)heap);
    sink = acc;
    return 0;
}
