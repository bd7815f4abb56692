/* The full-copy backend: compares every page with the snapshot and copies back the ones
 * that differ. Slow, and obviously right: the oracle the other backends are tested
 * against. */
#include "dirty_probe.h"
#include "track.h"

static int full_copy_start(struct fs_snapshot *s, char *err, size_t errlen) {
    (void)s, (void)err, (void)errlen;
    return 0;
}

void fs_collect_by_compare(struct fs_region *r) {
    for (uintptr_t p = r->start; p < r->end; p += PAGE) fs_snapshot_restore_page_in(r, p);
}

static int full_copy_collect(struct fs_snapshot *s) {
    for (int i = 0; i < s->region_count; i++) fs_collect_by_compare(&s->regions[i]);
    return 0;
}

const struct fs_tracker fs_tracker_full_copy = {
    .name = "full-copy", .probe = fs_probe_always, .start = full_copy_start, .collect = full_copy_collect,
};
