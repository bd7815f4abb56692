/* Real probes of the dirty-page tracking mechanisms: 0 when it works, -1 with a reason. */
#ifndef FS_DIRTY_PROBE_H
#define FS_DIRTY_PROBE_H
#include <stddef.h>
int fs_probe_pagemap_scan(char *reason, size_t len);
int fs_probe_soft_dirty(char *reason, size_t len);
int fs_probe_always(char *reason, size_t len);
#endif
