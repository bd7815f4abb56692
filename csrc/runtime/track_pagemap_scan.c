/* The pagemap-scan backend: userfaultfd async write-protect + PAGEMAP_SCAN.
 * Regions of FS_BIG_REGION or more are tracked chunk by chunk, since a walk costs
 * ~2 ns for every page in its range: a cold chunk (not written lately) is made
 * read-only and not walked; the first write to it (a fault, or a syscall that the
 * watch sees will write there) makes it hot: writable and walked. A hot chunk that
 * stays clean for CHUNK_COOL_AFTER restores turns cold again. The cost of a restore
 * then follows the pages written, not the size of the heap. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dirty_probe.h"
#include "fs_kernel.h"
#include "fs_log.h"
#include "track.h"


#define FS_BIG_REGION (32ul << 20)
/* ...or this, in a runner that traps kernel writes anyway (it has trapped holes): the
 * trap costs nothing more, and a walk of every page of ASan's allocator and globals
 * would cost more than the rest of the restore. */
#define FS_BIG_REGION_WATCHED (1ul << 20)
#define CHUNK FS_CHUNK_SIZE
#define CHUNK_COOL_AFTER 2

static size_t chunk_count(struct fs_region *r) { return (r->end - r->start + CHUNK - 1) / CHUNK; }

/* chunk state: 0 cold, else the restore count when it was last seen written */
static uint32_t *chunk_seen(struct fs_region *r) { return (uint32_t *)(void *)r->chunk_state; }

static void chunk_bounds(struct fs_region *r, size_t c, uintptr_t *start, uintptr_t *end) {
    *start = r->start + c * CHUNK;
    *end = *start + CHUNK < r->end ? *start + CHUNK : r->end;
}

/* 1 once the chunk's contents are in the snapshot copy */
static unsigned char *chunk_copied(struct fs_region *r) { return (unsigned char *)(chunk_seen(r) + chunk_count(r)); }

/* The hot chunks, so that a restore's work does not grow with the region's size:
 * [0] is the count, then the chunk indices. */
static uint32_t *hot_list(struct fs_region *r) {
    uintptr_t after = (uintptr_t)(chunk_copied(r) + chunk_count(r));
    return (uint32_t *)((after + 3) & ~(uintptr_t)3);
}

/* A cold chunk holds exactly the snapshot's contents (read-only since the snapshot,
 * or restored before it went cold), so its copy is taken here, on its first heat:
 * a runner never copies the chunks it never writes. */
static void heat_chunk(struct fs_snapshot *s, struct fs_region *r, size_t c) {
    uint32_t *seen = chunk_seen(r);
    if (seen[c]) return;
    uintptr_t a, b;
    chunk_bounds(r, c, &a, &b);
    if (!chunk_copied(r)[c]) {
        fs_libc.memcpy(r->copy + (a - r->start), (void *)a, b - a);
        chunk_copied(r)[c] = 1;
    }
    fs_sys3(SYS_mprotect, (long)a, (long)(b - a), r->prot);
    seen[c] = s->restore_count;
    uint32_t *hot = hot_list(r);
    hot[1 + hot[0]++] = (uint32_t)c;
}

static void heat_range(struct fs_snapshot *s, uintptr_t addr, size_t len) {
    for (uintptr_t p = addr & ~(PAGE - 1); p < addr + len;) {
        struct fs_region *r = fs_snapshot_find_region(p);
        if (!r) {
            p += PAGE;
            continue;
        }
        if (r->chunked) heat_chunk(s, r, (p - r->start) / CHUNK);
        uintptr_t next = r->chunked ? r->start + ((p - r->start) / CHUNK + 1) * CHUNK : r->end;
        p = next;
    }
}

static int pagemap_handle_fault(struct fs_snapshot *s, uintptr_t addr) {
    struct fs_region *r = fs_snapshot_find_region(addr);
    if (!r || !r->chunked) return 0;
    size_t c = (addr - r->start) / CHUNK;
    if (chunk_seen(r)[c]) return 0; /* hot already: a real fault */
    heat_chunk(s, r, c);
    return 1;
}

static void pagemap_note_kernel_write(struct fs_snapshot *s, uintptr_t addr, size_t len) { heat_range(s, addr, len); }

static void pagemap_note_reprotect(struct fs_snapshot *s, uintptr_t start, uintptr_t end) {
    heat_range(s, start, end - start);
}

static int wp_range(int uffd, uintptr_t start, uintptr_t end) {
    struct uffdio_writeprotect wp = {.range = {start, end - start}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
}

/* Regions separated by at most this many other VMAs share one walk: a walk costs
 * about a microsecond to start, and ~0.2 us more for each VMA in its range. */
#define SCAN_MERGE_GAP_VMAS 4

static void plan_scan_ranges(struct fs_snapshot *s) {
    s->scan_range_count = 0;
    int after_chunked = 0;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        if (r->chunked) { /* walked chunk by chunk: never inside a merged range */
            after_chunked = 1;
            continue;
        }
        struct fs_mapping_change *last =
            s->scan_range_count && !after_chunked ? &s->scan_ranges[s->scan_range_count - 1] : NULL;
        after_chunked = 0;
        if (last) {
            int a = fs_snapshot_layout_index(last->end - 1), b = fs_snapshot_layout_index(r->start);
            if (a >= 0 && b >= 0 && b - a - 1 <= SCAN_MERGE_GAP_VMAS) {
                last->end = r->end;
                continue;
            }
        }
        s->scan_ranges[s->scan_range_count].start = r->start;
        s->scan_ranges[s->scan_range_count].end = r->end;
        s->scan_range_count++;
    }
}

static int pagemap_scan_start(struct fs_snapshot *s, char *err, size_t errlen) {
    s->uffd = fs_move_fd_high((int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (s->uffd < 0) {
        snprintf(err, errlen, "userfaultfd() failed: %s", strerror(errno));
        return -1;
    }
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
    if (ioctl(s->uffd, UFFDIO_API, &api)) {
        snprintf(err, errlen, "UFFDIO_API with async write-protect failed: %s", strerror(errno));
        return -1;
    }
    s->pagemap_fd = fs_move_fd_high(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (s->pagemap_fd < 0) {
        snprintf(err, errlen, "cannot open /proc/self/pagemap: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        struct uffdio_register reg = {.range = {r->start, r->end - r->start}, .mode = UFFDIO_REGISTER_MODE_WP};
        if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) || wp_range(s->uffd, r->start, r->end)) {
            snprintf(err, errlen, "cannot write-protect %s (%#lx-%#lx) with userfaultfd: %s", r->name,
                     (unsigned long)r->start, (unsigned long)r->end, strerror(errno));
            return -1;
        }
    }
    int any_chunked = 0;
    size_t big = s->has_trapped_holes ? FS_BIG_REGION_WATCHED : FS_BIG_REGION;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        memset(r->written, 0, (r->end - r->start) / PAGE);
        r->chunked = r->end - r->start >= big && !r->compare_always;
        if (!r->chunked) continue;
        any_chunked = 1;
        memset(chunk_seen(r), 0, chunk_count(r) * (sizeof(uint32_t) + 1));
        hot_list(r)[0] = 0;
        if (mprotect((void *)r->start, r->end - r->start, r->prot & ~PROT_WRITE)) {
            snprintf(err, errlen, "mprotect of %s failed: %s", r->name, strerror(errno));
            return -1;
        }
    }
    if (any_chunked) {
        fs_write_faults_install(s);
        s->track_kernel_writes = 1;
    }
    plan_scan_ranges(s);
    for (int i = 0; i < s->scan_range_count; i++)
        FS_DEBUG("scan range %#lx-%#lx", (unsigned long)s->scan_ranges[i].start, (unsigned long)s->scan_ranges[i].end);
    for (int i = 0; i < s->region_count; i++)
        if (s->regions[i].chunked)
            FS_DEBUG("chunked %#lx-%#lx", (unsigned long)s->regions[i].start, (unsigned long)s->regions[i].end);
    return 0;
}

static int write_protect(struct fs_snapshot *s, uintptr_t start, uintptr_t end) {
    struct uffdio_writeprotect wp = {.range = {start, end - start}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    return (int)fs_raw_syscall(SYS_ioctl, s->uffd, UFFDIO_WRITEPROTECT, (long)&wp, 0, 0, 0);
}

/* A plain PAGEMAP_SCAN walk finds the pages not write-protected: the ones written
 * since they were last protected. Each is compared with the snapshot: one that
 * differs is copied back and left writable (it was written this time and likely will
 * be next time, so it is cheaper to compare it again than to protect it and take a
 * write fault); one that matches was not written this time and is protected again.
 * A writable page is reported by every scan, so no write to it can be missed. */
/* Restores one written page; 1 when it should be write-protected again: it matched
 * the snapshot on PAGE_COOL_AFTER restores in a row. Until then it stays writable and
 * is compared at every restore, which costs less than the write-protect fault an input
 * takes when it writes the page again. */
#define PAGE_COOL_AFTER 4

static int page_cools(uintptr_t p) {
    struct fs_region *r = fs_snapshot_find_region(p);
    if (!r) return 1;
    int copied = fs_snapshot_restore_page_in(r, p);
    unsigned char *clean_runs = &r->written[(p - r->start) / PAGE];
    if (copied) {
        *clean_runs = 0;
        return 0;
    }
    if (++*clean_runs < PAGE_COOL_AFTER) return 0;
    *clean_runs = 0;
    return 1;
}

static int scan_and_restore(struct fs_snapshot *s, uintptr_t start, uintptr_t end, struct fs_region *chunked) {
    struct fs_page_region *vec = s->scan_vec;
    while (start < end) {
        struct fs_pm_scan_arg arg = {
            .size = sizeof arg, .start = start, .end = end, .vec = (uintptr_t)vec, .vec_len = FS_DIRTY_VEC,
            .category_mask = FS_PAGE_IS_WRITTEN | FS_PAGE_IS_WPALLOWED, .return_mask = FS_PAGE_IS_WRITTEN};
        long n = fs_raw_syscall(SYS_ioctl, s->pagemap_fd, FS_PAGEMAP_SCAN, (long)&arg, 0, 0, 0);
        if (n < 0) return -1;
        for (long k = 0; k < n; k++) {
            uintptr_t protect_from = 0;
            for (uintptr_t p = vec[k].start; p < vec[k].end; p += PAGE) {
                if (chunked) chunk_seen(chunked)[(p - chunked->start) / CHUNK] = s->restore_count;
                int protect = page_cools(p);
                if (protect && !protect_from) protect_from = p;
                if (!protect && protect_from) {
                    if (write_protect(s, protect_from, p)) return -1;
                    protect_from = 0;
                }
            }
            if (protect_from && write_protect(s, protect_from, vec[k].end)) return -1;
        }
        if (arg.walk_end <= start) break;
        start = arg.walk_end;
    }
    return 0;
}

/* Walks the hot chunks of a chunked region (runs of them at once), then cools the
 * chunks that stayed clean. */
static int collect_chunked(struct fs_snapshot *s, struct fs_region *r) {
    uint32_t *seen = chunk_seen(r), *hot = hot_list(r), count = hot[0], *list = hot + 1;
    for (uint32_t i = 1; i < count; i++) /* sorted, so that neighbours share a walk */
        for (uint32_t j = i; j > 0 && list[j - 1] > list[j]; j--) {
            uint32_t t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    for (uint32_t i = 0; i < count;) {
        uint32_t j = i + 1;
        while (j < count && list[j] == list[j - 1] + 1) j++;
        uintptr_t a, b, unused;
        chunk_bounds(r, list[i], &a, &unused);
        chunk_bounds(r, list[j - 1], &unused, &b);
        if (scan_and_restore(s, a, b, r)) return -1;
        i = j;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t c = list[i];
        if (s->restore_count - seen[c] < CHUNK_COOL_AFTER) {
            list[kept++] = c;
            continue;
        }
        uintptr_t a, b;
        chunk_bounds(r, c, &a, &b);
        fs_sys3(SYS_mprotect, (long)a, (long)(b - a), r->prot & ~PROT_WRITE);
        seen[c] = 0;
    }
    hot[0] = kept;
    return 0;
}

/* A plain PAGEMAP_SCAN walk finds the pages not write-protected: the ones written
 * since they were last protected. Each is compared with the snapshot: one that
 * differs is copied back and left writable (it was written this time and likely will
 * be next time, so it is cheaper to compare it again than to protect it and take a
 * write fault); one that matches was not written this time and is protected again.
 * A writable page is reported by every scan, so no write to it can be missed. */
static int pagemap_scan_collect(struct fs_snapshot *s) {
    for (int i = 0; i < s->scan_range_count; i++)
        if (scan_and_restore(s, s->scan_ranges[i].start, s->scan_ranges[i].end, NULL)) return -1;
    for (int i = 0; i < s->region_count; i++)
        if (s->regions[i].chunked && collect_chunked(s, &s->regions[i])) return -1;
    return 0;
}

size_t fs_chunk_marks_size(const struct fs_region *r) {
    size_t chunks = (r->end - r->start + CHUNK - 1) / CHUNK;
    /* last-seen u32 and copied byte per chunk, then the hot list: a u32 count and a u32
     * per chunk, 4-aligned */
    return (chunks * 9 + 16) & ~7ul;
}

int fs_chunk_has_copy(struct fs_region *r, uintptr_t page) {
    return !r->chunked || chunk_copied(r)[(page - r->start) / CHUNK];
}

const struct fs_tracker fs_tracker_pagemap_scan = {
    .name = "pagemap-scan", .probe = fs_probe_pagemap_scan, .start = pagemap_scan_start,
    .collect = pagemap_scan_collect, .note_kernel_write = pagemap_note_kernel_write,
    .note_reprotect = pagemap_note_reprotect, .handle_fault = pagemap_handle_fault,
};
