/* What the dirty-page tracking backends share with each other and with the registry
 * (track.c). Each backend lives in its own track_*.c and exports one fs_tracker. */
#ifndef FS_TRACK_H
#define FS_TRACK_H

#include "fs_runtime.h"

#define PAGE FS_PAGE_SIZE

extern const struct fs_tracker fs_tracker_full_copy, fs_tracker_pagemap_scan, fs_tracker_soft_dirty,
    fs_tracker_mprotect;

/* full-copy's collect for one region: compare every page, copy back those that differ */
void fs_collect_by_compare(struct fs_region *r);

/* write_faults.c: the SIGSEGV and SIGBUS handler of backends that keep memory
 * read-only or write-protected */
void fs_write_faults_install(struct fs_snapshot *s);

/* track_pagemap_scan.c: bookkeeping bytes of a write-trapped region, and whether one
 * of its pages has its snapshot copy yet */
size_t fs_trap_marks_size(const struct fs_region *r);
int fs_trap_page_has_copy(struct fs_region *r, uintptr_t page);

#endif
