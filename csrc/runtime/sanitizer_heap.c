/* ASan's allocator maps memory for a size class only when the class first runs dry
 * (64 KiB of blocks and 64 KiB of free list at a time, and poisons their shadow). A
 * class the initialisation never used is therefore mapped by every input that uses it,
 * and a snapshot restore unmaps it again: per class and input, two mmaps trapped to be
 * tracked, two write traps on fresh shadow, and two mmaps in the restore. One block of
 * every class, allocated and freed before a snapshot server forks its first runner, maps
 * them all once, in the state every runner starts from. The purge takes the freed blocks
 * out of the quarantine, so that classes of one block per mapping have it free again.
 * An input that outgrows a class still maps more, as before.
 *
 * Fork mode is left as it is: the classes lie 64 GiB apart, and their mappings and
 * shadow add ~1.4 MiB of page tables that every fork would copy (3x the time of a fork
 * of ini_parser). So the two modes' allocators hand out other addresses, and report
 * other mapped sizes; nothing else differs.
 *
 * The price is paid by each runner: ~170 more regions to write-protect, ~2 ms more to
 * take its snapshot, and a crash costs ~10 ms where it cost ~6. A target that crashes
 * on more than ~2% of its inputs is better off without (FORKSERVER_ASAN_WARMUP=0). */
#include <stdlib.h>

#include "fs_runtime.h"

extern void __asan_init(void) __attribute__((weak));
extern void __sanitizer_purge_allocator(void) __attribute__((weak));

/* ASan's primary allocator serves blocks up to 128 KiB, in classes 16 bytes apart up to
 * 256 and 1/8 to 1/4 of their size apart above: steps of 8 bytes, or 1/16 of the size,
 * land in each of them. */
#define PRIMARY_MAX (128u << 10)

void fs_sanitizer_heap_warm(void) {
    if (!__asan_init) return;
    for (size_t size = 1; size <= PRIMARY_MAX; size += size / 16 > 8 ? size / 16 : 8) {
        void *p = malloc(size);
        __asm__ volatile("" : : "r"(p) : "memory"); /* a malloc the compiler may not drop */
        free(p);
    }
    if (__sanitizer_purge_allocator) __sanitizer_purge_allocator();
}
