/* The soft-dirty backend: clear_refs, then bit 55 of /proc/self/pagemap names the pages
 * written since. Needs CONFIG_MEM_SOFT_DIRTY. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dirty_probe.h"
#include "fs_kernel.h"
#include "track.h"


static int soft_dirty_clear(void) {
    int fd = (int)fs_sys3(SYS_openat, AT_FDCWD, (long)"/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long n = fs_sys3(SYS_write, fd, (long)"4", 1);
    fs_sys3(SYS_close, fd, 0, 0);
    return n == 1 ? 0 : -1;
}

static int soft_dirty_start(struct fs_snapshot *s, char *err, size_t errlen) {
    s->pagemap_fd = fs_move_fd_high(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (s->pagemap_fd < 0 || soft_dirty_clear()) {
        snprintf(err, errlen, "soft-dirty tracking unavailable: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int soft_dirty_collect(struct fs_snapshot *s) {
    uint64_t *entries = s->scan_vec; /* FS_DIRTY_VEC * 3 u64 */
    size_t chunk = FS_DIRTY_VEC * 3;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        for (uintptr_t base = r->start; base < r->end; base += chunk * PAGE) {
            size_t pages = (r->end - base) / PAGE;
            if (pages > chunk) pages = chunk;
            long n = fs_raw_syscall(SYS_pread64, s->pagemap_fd, (long)entries, (long)(pages * 8),
                                    (long)(base / PAGE * 8), 0, 0);
            if (n != (long)(pages * 8)) return -1;
            for (size_t k = 0; k < pages; k++)
                if (entries[k] >> FS_PM_SOFT_DIRTY_BIT & 1) fs_snapshot_restore_page(base + k * PAGE);
        }
    }
    return soft_dirty_clear();
}

const struct fs_tracker fs_tracker_soft_dirty = {
    .name = "soft-dirty", .probe = fs_probe_soft_dirty, .start = soft_dirty_start, .collect = soft_dirty_collect,
};
