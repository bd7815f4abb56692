/* AFL++'s havoc stage (afl-fuzz-one.c), rewritten: the same kinds of mutation with the
 * same interesting values and block sizes, driven by a splitmix64 generator so that a
 * seed gives the same mutants on every machine. */
#include "fs_mutate.h"

#include <string.h>

#define HAVOC_BLK_SMALL 32
#define HAVOC_BLK_MEDIUM 128
#define HAVOC_BLK_LARGE 1500
#define HAVOC_BLK_XL 32768
#define ARITH_MAX 35

static const int8_t interesting_8[] = {-128, -1, 0, 1, 16, 32, 64, 100, 127};
static const int16_t interesting_16[] = {-128, -1, 0, 1, 16, 32, 64, 100, 127,
                                         -32768, -129, 128, 255, 256, 512, 1000, 1024, 4096, 32767};
static const int32_t interesting_32[] = {-128, -1, 0, 1, 16, 32, 64, 100, 127, -32768, -129, 128, 255, 256, 512,
                                         1000, 1024, 4096, 32767, (int32_t)0x80000000, -100663046, -32769, 32768,
                                         65535, 65536, 100663045, 2147483647};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t next(unsigned long long *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(unsigned long long *s, uint32_t n) { return n ? (uint32_t)(next(s) % n) : 0; }

static uint16_t swap16(uint16_t v) { return (uint16_t)((v << 8) | (v >> 8)); }
static uint32_t swap32(uint32_t v) { return __builtin_bswap32(v); }

/* AFL's choose_block_len: mostly small blocks, now and then a large one. */
static uint32_t block_len(unsigned long long *s, uint32_t limit) {
    uint32_t lo, hi;
    switch (below(s, 3)) {
    case 0: lo = 1; hi = HAVOC_BLK_SMALL; break;
    case 1: lo = HAVOC_BLK_SMALL; hi = HAVOC_BLK_MEDIUM; break;
    default:
        if (below(s, 10)) { lo = HAVOC_BLK_MEDIUM; hi = HAVOC_BLK_LARGE; }
        else { lo = HAVOC_BLK_LARGE; hi = HAVOC_BLK_XL; }
    }
    if (lo >= limit) lo = 1;
    if (hi > limit) hi = limit;
    return lo + below(s, hi - lo + 1);
}

enum { FLIP_BIT, INTERESTING8, INTERESTING16, INTERESTING32, ARITH8, ARITH16, ARITH32, RANDOM_BYTE,
       DELETE_BLOCK, CLONE_BLOCK, OVERWRITE_BLOCK, INSERT_TOKEN, OVERWRITE_TOKEN, SPLICE_OVERWRITE,
       SPLICE_INSERT, OPS };

/* Makes room for n bytes at pos (the tail moves up); false when the mutant would grow
 * past max_len. */
static int open_gap(unsigned char *out, uint32_t *len, uint32_t max_len, uint32_t pos, uint32_t n) {
    if (n == 0 || *len + n > max_len) return 0;
    memmove(out + pos + n, out + pos, *len - pos);
    *len += n;
    return 1;
}

static void mutate_once(unsigned char *out, uint32_t *len, uint32_t max_len, const unsigned char *splice,
                        uint32_t splice_len, const struct fs_tokens *tokens, unsigned long long *s) {
    uint32_t n = *len;
    int op = (int)below(s, OPS);
    if ((op == INSERT_TOKEN || op == OVERWRITE_TOKEN) && (!tokens || !tokens->count)) op = RANDOM_BYTE;
    if ((op == SPLICE_OVERWRITE || op == SPLICE_INSERT) && (!splice || !splice_len)) op = CLONE_BLOCK;
    switch (op) {
    case FLIP_BIT: out[below(s, n)] ^= (unsigned char)(1u << below(s, 8)); break;
    case INTERESTING8: out[below(s, n)] = (unsigned char)interesting_8[below(s, COUNT(interesting_8))]; break;
    case INTERESTING16: {
        if (n < 2) break;
        uint16_t v = (uint16_t)interesting_16[below(s, COUNT(interesting_16))];
        if (below(s, 2)) v = swap16(v);
        memcpy(out + below(s, n - 1), &v, 2);
        break;
    }
    case INTERESTING32: {
        if (n < 4) break;
        uint32_t v = (uint32_t)interesting_32[below(s, COUNT(interesting_32))];
        if (below(s, 2)) v = swap32(v);
        memcpy(out + below(s, n - 3), &v, 4);
        break;
    }
    case ARITH8: {
        uint32_t at = below(s, n);
        int d = 1 + (int)below(s, ARITH_MAX);
        out[at] = (unsigned char)(below(s, 2) ? out[at] + d : out[at] - d);
        break;
    }
    case ARITH16: {
        if (n < 2) break;
        uint32_t at = below(s, n - 1);
        uint16_t v, d = (uint16_t)(1 + below(s, ARITH_MAX));
        int big_endian = (int)below(s, 2);
        memcpy(&v, out + at, 2);
        if (big_endian) v = swap16(v);
        v = below(s, 2) ? (uint16_t)(v + d) : (uint16_t)(v - d);
        if (big_endian) v = swap16(v);
        memcpy(out + at, &v, 2);
        break;
    }
    case ARITH32: {
        if (n < 4) break;
        uint32_t at = below(s, n - 3), v, d = 1 + below(s, ARITH_MAX);
        int big_endian = (int)below(s, 2);
        memcpy(&v, out + at, 4);
        if (big_endian) v = swap32(v);
        v = below(s, 2) ? v + d : v - d;
        if (big_endian) v = swap32(v);
        memcpy(out + at, &v, 4);
        break;
    }
    case RANDOM_BYTE: out[below(s, n)] ^= (unsigned char)(1 + below(s, 255)); break;
    case DELETE_BLOCK: {
        if (n < 2) break;
        uint32_t del = block_len(s, n - 1), from = below(s, n - del + 1);
        memmove(out + from, out + from + del, n - from - del);
        *len = n - del;
        break;
    }
    case CLONE_BLOCK: { /* 3 in 4: a copy of a block of the input; else a run of one byte */
        int constant = below(s, 4) == 0;
        uint32_t clone_len = constant ? block_len(s, HAVOC_BLK_XL) : block_len(s, n);
        uint32_t from = constant ? 0 : below(s, n - clone_len + 1), to = below(s, n + 1);
        unsigned char fill = below(s, 2) ? (unsigned char)next(s) : out[below(s, n)];
        if (!open_gap(out, len, max_len, to, clone_len)) break;
        if (constant) {
            memset(out + to, fill, clone_len);
        } else if (from >= to) { /* the block moved up with the tail */
            memcpy(out + to, out + from + clone_len, clone_len);
        } else if (from + clone_len <= to) {
            memcpy(out + to, out + from, clone_len);
        } else { /* the gap opened inside the block: its head stayed, its tail moved up */
            uint32_t head = to - from;
            memcpy(out + to, out + from, head);
            memcpy(out + to + head, out + to + clone_len, clone_len - head);
        }
        break;
    }
    case OVERWRITE_BLOCK: {
        if (n < 2) break;
        uint32_t copy_len = block_len(s, n - 1), from = below(s, n - copy_len + 1), to = below(s, n - copy_len + 1);
        if (below(s, 4)) {
            if (from != to) memmove(out + to, out + from, copy_len);
        } else {
            memset(out + to, below(s, 2) ? (unsigned char)next(s) : out[below(s, n)], copy_len);
        }
        break;
    }
    case INSERT_TOKEN: case OVERWRITE_TOKEN: {
        uint32_t t = below(s, tokens->count), tlen = tokens->lens[t];
        const unsigned char *tok = tokens->data + tokens->offsets[t];
        if (op == OVERWRITE_TOKEN) {
            if (tlen > n) break;
            memcpy(out + below(s, n - tlen + 1), tok, tlen);
        } else {
            uint32_t to = below(s, n + 1);
            if (open_gap(out, len, max_len, to, tlen)) memcpy(out + to, tok, tlen);
        }
        break;
    }
    case SPLICE_OVERWRITE: { /* a block of the other input over the same place in this one */
        uint32_t limit = n < splice_len ? n : splice_len;
        if (limit < 1) break;
        uint32_t copy_len = block_len(s, limit), from = below(s, splice_len - copy_len + 1);
        memcpy(out + below(s, n - copy_len + 1), splice + from, copy_len);
        break;
    }
    case SPLICE_INSERT: {
        uint32_t copy_len = block_len(s, splice_len), from = below(s, splice_len - copy_len + 1), to = below(s, n + 1);
        if (open_gap(out, len, max_len, to, copy_len)) memcpy(out + to, splice + from, copy_len);
        break;
    }
    }
}

unsigned int fs_havoc(const unsigned char *in, unsigned int len, unsigned char *out, unsigned int max_len,
                      const unsigned char *splice, unsigned int splice_len, const struct fs_tokens *tokens,
                      unsigned long long *rng, unsigned int max_stack_pow) {
    if (max_len == 0) return 0;
    uint32_t n = len < max_len ? len : max_len;
    if (n) memcpy(out, in, n);
    else out[n++] = (unsigned char)next(rng); /* an empty input grows one byte first */
    uint32_t pow = 1 + below(rng, max_stack_pow ? max_stack_pow : 1);
    for (uint32_t i = 0, stack = 1u << pow; i < stack; i++) mutate_once(out, &n, max_len, splice, splice_len, tokens, rng);
    return n;
}

unsigned int fs_havoc_batch(struct fs_control *ctl, const unsigned char *parent, unsigned int len,
                            const unsigned char *splice, unsigned int splice_len, const struct fs_tokens *tokens,
                            unsigned long long *rng, unsigned int count, unsigned int max_len,
                            unsigned int max_stack_pow) {
    uint32_t offset = 0, i = 0;
    if (count > FS_MAX_BATCH) count = FS_MAX_BATCH;
    for (; i < count; i++) {
        uint32_t room = FS_INPUT_AREA_SIZE - offset;
        if (room < 4 + 8) break;
        uint32_t cap = room - 4 < max_len ? room - 4 : max_len;
        uint32_t n = fs_havoc(parent, len, ctl->input_area + offset + 4, cap, splice, splice_len, tokens, rng,
                              max_stack_pow);
        memcpy(ctl->input_area + offset, &n, 4);
        ctl->input_offsets[i] = offset;
        offset += (4 + n + 7) & ~7u;
    }
    ctl->batch_count = i;
    return i;
}
