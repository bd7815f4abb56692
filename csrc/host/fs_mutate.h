/* AFL++'s havoc stage in C, for the orchestrator: mutants are written straight into a
 * buffer or into a snapshot batch's input slots, with no Python per byte. */
#ifndef FS_MUTATE_H
#define FS_MUTATE_H

#include <stdint.h>

#include "fs_protocol.h"

/* Dictionary tokens, packed: token i is data[offsets[i] .. offsets[i] + lens[i]). */
struct fs_tokens {
    const unsigned char *data;
    const unsigned int *offsets;
    const unsigned int *lens;
    unsigned int count;
};

/* One havoc mutant of in[0..len): 2^(1..max_stack_pow) stacked mutations (AFL++'s bit
 * and byte flips, arithmetic, interesting values, block delete, insert, overwrite and
 * clone, dictionary tokens, and splicing with splice[0..splice_len) when it is given).
 * Writes at most max_len bytes to out and returns the mutant's length, at least 1.
 * rng is the generator's state: the same state and arguments give the same mutant. */
unsigned int fs_havoc(const unsigned char *in, unsigned int len, unsigned char *out, unsigned int max_len,
                      const unsigned char *splice, unsigned int splice_len, const struct fs_tokens *tokens,
                      unsigned long long *rng, unsigned int max_stack_pow);

/* count havoc mutants of parent into the control block's input slots, as one batch.
 * Returns how many fit (the batch's count); each is at most max_len bytes. */
unsigned int fs_havoc_batch(struct fs_control *ctl, const unsigned char *parent, unsigned int len,
                            const unsigned char *splice, unsigned int splice_len, const struct fs_tokens *tokens,
                            unsigned long long *rng, unsigned int count, unsigned int max_len,
                            unsigned int max_stack_pow);

#endif
