/* AFL's has-new-bits, shared by the runtime (per-input novelty in a batch) and the
 * host helpers (the orchestrator's own runs): the raw hit counts of a map are bucketed
 * (fs_buckets.h) and compared with the virgin map, where a set bit is a bucket no
 * input has reached yet. 2: a byte of the map lands on an edge no input has hit (its
 * virgin byte is still 0xff); 1: only on a new bucket of a known edge; 0: nothing new.
 * With update, the virgin map loses the bits seen. Byte 0 is the "I ran" byte: keep
 * its virgin byte 0. */
#ifndef FS_NOVELTY_H
#define FS_NOVELTY_H

#include <stdint.h>
#include <string.h>

#include "fs_buckets.h"

static inline int fs_new_bits(const unsigned char *map, unsigned char *virgin, unsigned int size, int update) {
    int ret = 0;
    unsigned int i = 0;
    for (; i < size; i++) {
        if ((i & 7) == 0 && i + 8 <= size) { /* most of a map is zeros: skip them a word at a time */
            uint64_t word;
            memcpy(&word, map + i, sizeof word);
            if (!word) {
                i += 7;
                continue;
            }
        }
        if (!map[i]) continue;
        unsigned char b = fs_bucket_of[map[i]];
        if (!(b & virgin[i])) continue;
        if (virgin[i] == 0xff) ret = 2;
        else if (!ret) ret = 1;
        if (update) virgin[i] &= (unsigned char)~b;
        else if (ret == 2) break;
    }
    return ret;
}

#endif
