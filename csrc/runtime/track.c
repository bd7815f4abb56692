/* The registry of dirty-page tracking backends (one per track_*.c file), the choice of
 * the best one that works here, and the bookkeeping each region needs. */
#include <stddef.h>

#include "dirty_probe.h"
#include "track.h"

static const struct fs_tracker *const trackers[FS_BACKEND_COUNT] = {
    [FS_BACKEND_PAGEMAP_SCAN] = &fs_tracker_pagemap_scan,
    [FS_BACKEND_SOFT_DIRTY] = &fs_tracker_soft_dirty,
    [FS_BACKEND_MPROTECT] = &fs_tracker_mprotect,
    [FS_BACKEND_FULL_COPY] = &fs_tracker_full_copy,
};

const struct fs_tracker *fs_tracker_get(int backend) {
    return backend > 0 && backend < FS_BACKEND_COUNT ? trackers[backend] : NULL;
}

/* The fastest backend that works here. */
int fs_tracker_auto(char *reason, size_t len) {
    static const int order[] = {FS_BACKEND_PAGEMAP_SCAN, FS_BACKEND_SOFT_DIRTY, FS_BACKEND_MPROTECT};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (trackers[order[i]]->probe(reason, len) == 0) return order[i];
    return FS_BACKEND_FULL_COPY;
}

/* Per region: one mark byte per page (8-aligned), then the write-trap bookkeeping. */
static size_t page_marks_size(const struct fs_region *r) { return ((r->end - r->start) / FS_PAGE_SIZE + 7) & ~7ul; }

size_t fs_tracker_marks_size(const struct fs_region *r) { return page_marks_size(r) + fs_trap_marks_size(r); }

void fs_tracker_place_marks(struct fs_region *r, unsigned char *marks) {
    r->written = marks;
    r->trap_state = marks + page_marks_size(r);
}

int fs_tracker_page_has_copy(struct fs_snapshot *s, struct fs_region *r, uintptr_t page) {
    (void)s;
    return fs_trap_page_has_copy(r, page);
}
