/* AFL's hit-count buckets: 0, 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128-255 map to
 * 0, 1, 2, 4, 8, 16, 32, 64, 128. The runtime (map hashes) and the host helpers
 * (classify, new bits) share this one table; Python reads it through the helpers. */
#ifndef FS_BUCKETS_H
#define FS_BUCKETS_H

static const unsigned char fs_bucket_of[256] = {
    [0] = 0, [1] = 1, [2] = 2, [3] = 4,
    [4 ... 7] = 8, [8 ... 15] = 16, [16 ... 31] = 32, [32 ... 127] = 64, [128 ... 255] = 128,
};

#endif
