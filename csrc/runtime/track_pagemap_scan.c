/* The pagemap-scan backend: userfaultfd async write-protect + PAGEMAP_SCAN.
 * A walk costs ~2 ns for every page in its range, so regions of FS_BIG_REGION or more
 * are not walked: they are write-protected through a second userfaultfd, in sync mode
 * with SIGBUS delivery, and the first write to a page traps (write_faults.c). The trap
 * saves the page's snapshot copy if it has none yet, makes the page writable and puts
 * it on the region's open list; a syscall that the watch sees will write there does
 * the same beforehand. A restore then visits the open pages only: one that differs is
 * copied back and stays open, one that stays clean for its wait (8 to 128 restores,
 * learnt per page) is protected again. The cost of a restore follows the pages written, not
 * the size of the heap, and no VMA is ever split. Regions too small to be worth a walk
 * of their own (a library's .data, next to trapped memory) are compared in full. */
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
/* A runner that traps kernel writes anyway (it has trapped holes: ASan's shadow) traps
 * every region of any size: there a trap costs only the first write to a cold page,
 * while a walk costs ~0.2 us per VMA in its range and ~2 ns per page at every restore.
 * ASan's allocator chunks, shadow pieces and static TLS made up half of maze's restore. */
/* Per page of a trapped region: */
#define PAGE_COPIED 1 /* its snapshot contents are in r->copy */
#define PAGE_OPEN 2   /* writable: on the open list, compared at every restore */
#define PAGE_COOLED 4 /* protected again after being open at least once (closed_at is set) */
#define PAGE_LEVEL_SHIFT 3 /* bits 3-5: its wait, TRAPPED_PAGE_COOL_MIN << level restores */
#define PAGE_LEVEL_MAX 4

static size_t page_count(const struct fs_region *r) { return (r->end - r->start) / PAGE; }

static unsigned char *page_state(struct fs_region *r) { return r->trap_state; }

/* A trapped region's bookkeeping, from trap_state (8-aligned): a state byte per page,
 * then the open list (4-aligned), then closed_at; offsets for a region of n pages. */
static size_t open_list_offset(size_t n) { return (n + 3) & ~(size_t)3; }
static size_t closed_at_offset(size_t n) { return open_list_offset(n) + sizeof(uint32_t) * (1 + n); }

/* The open pages, so that a restore's work does not grow with the region's size:
 * [0] is the count, then the page indices. */
static uint32_t *open_list(struct fs_region *r) { return (uint32_t *)(r->trap_state + open_list_offset(page_count(r))); }

/* Per page, the restore count (low 16 bits) at which it was last protected again. */
static uint16_t *closed_at(struct fs_region *r) { return (uint16_t *)(r->trap_state + closed_at_offset(page_count(r))); }

/* Write-protects [start, end) through uffd, or lifts the protection: 0, or -1 with
 * errno set. A raw call: the runner's own calls pass the syscall watch untrapped. */
static int uffd_wp(int uffd, uintptr_t start, uintptr_t end, int protect) {
    struct uffdio_writeprotect wp = {.range = {start, end - start}, .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
    long r = fs_raw_syscall(SYS_ioctl, uffd, UFFDIO_WRITEPROTECT, (long)&wp, 0, 0, 0);
    if (r < 0) errno = (int)-r;
    return r < 0 ? -1 : 0;
}

static int trap_wp(struct fs_snapshot *s, uintptr_t start, uintptr_t end, int protect) {
    return uffd_wp(s->trap_uffd, start, end, protect);
}

#define TRAPPED_PAGE_COOL_MIN 8

static unsigned wait_level(unsigned char state) { return (state >> PAGE_LEVEL_SHIFT) & 7; }

/* Clean restores an open page waits before it is protected again. */
static unsigned page_wait(unsigned char state) { return TRAPPED_PAGE_COOL_MIN << wait_level(state); }

/* A page written again soon after it was protected (within the wait it had) waits
 * twice as long next time, up to 128 restores; one written again later, half as long.
 * Keeping a page open for d restores costs d compares, protecting it and taking its
 * trap the cost of ~50: the wait follows how soon each page tends to be written again. */
static void adjust_wait(struct fs_snapshot *s, struct fs_region *r, size_t i) {
    unsigned char *state = page_state(r);
    unsigned level = wait_level(state[i]);
    uint16_t gap = (uint16_t)(s->restore_count - closed_at(r)[i]);
    if (gap <= page_wait(state[i])) {
        if (level < PAGE_LEVEL_MAX) level++;
    } else if (level > 0) {
        level--;
    }
    state[i] = (unsigned char)((state[i] & ~(7u << PAGE_LEVEL_SHIFT)) | (level << PAGE_LEVEL_SHIFT));
}

/* Opens the pages of [a, b) (page aligned, inside r). A page not opened since the
 * snapshot still holds the snapshot's contents (any write would have trapped), so its
 * copy is taken here: a runner never copies the pages it never writes. */
static void open_pages(struct fs_snapshot *s, struct fs_region *r, uintptr_t a, uintptr_t b) {
    unsigned char *state = page_state(r);
    uint32_t *open = open_list(r);
    int any_closed = 0;
    for (uintptr_t p = a; p < b; p += PAGE) {
        size_t i = (p - r->start) / PAGE;
        if (state[i] & PAGE_OPEN) continue;
        any_closed = 1;
        if (!(state[i] & PAGE_COPIED)) {
            fs_libc.memcpy(r->copy + (p - r->start), (void *)p, PAGE);
            state[i] |= PAGE_COPIED;
        }
    }
    if (!any_closed) return;
    trap_wp(s, a, b, 0);
    for (uintptr_t p = a; p < b; p += PAGE) {
        size_t i = (p - r->start) / PAGE;
        if (state[i] & PAGE_OPEN) continue;
        if (state[i] & PAGE_COOLED) adjust_wait(s, r, i);
        state[i] |= PAGE_OPEN;
        r->written[i] = 0;
        open[1 + open[0]++] = (uint32_t)i;
    }
}

static void open_range(struct fs_snapshot *s, uintptr_t addr, size_t len) {
    uintptr_t end = (addr + len + PAGE - 1) & ~(PAGE - 1);
    for (uintptr_t p = addr & ~(PAGE - 1); p < end;) {
        struct fs_region *r = fs_snapshot_find_region(p);
        if (!r) {
            p += PAGE;
            continue;
        }
        uintptr_t stop = end < r->end ? end : r->end;
        if (r->trap_writes) open_pages(s, r, p, stop);
        p = stop;
    }
}

static int pagemap_handle_fault(struct fs_snapshot *s, uintptr_t addr) {
    struct fs_region *r = fs_snapshot_find_region(addr);
    if (!r || !r->trap_writes) return 0;
    uintptr_t p = addr & ~(PAGE - 1);
    if (page_state(r)[(p - r->start) / PAGE] & PAGE_OPEN) return 0; /* open already: a real fault */
    open_pages(s, r, p, p + PAGE);
    return 1;
}

static void pagemap_note_kernel_write(struct fs_snapshot *s, uintptr_t addr, size_t len) {
    s->opened_before_write = 0;
    struct fs_region *r = fs_snapshot_find_region(addr);
    if (r && r->trap_writes) {
        s->opened_region = r;
        s->opened_before_write = open_list(r)[0] + 1; /* 0: nothing to take back */
    }
    open_range(s, addr, len);
}

/* A read-like call returned: the pages it opened past what the kernel wrote are still
 * the snapshot's, so they are protected again at once (a 1 MiB read buffer that gets
 * ten bytes must not cost 256 compares at every restore). */
static void pagemap_kernel_write_done(struct fs_snapshot *s, uintptr_t written_end) {
    struct fs_region *r = s->opened_region;
    if (!r || !s->opened_before_write) return;
    uint32_t *open = open_list(r), keep = s->opened_before_write - 1;
    uintptr_t limit = (written_end + PAGE - 1) & ~(PAGE - 1);
    uintptr_t run_start = 0, run_end = 0; /* opened in address order, so taken back as one run */
    while (open[0] > keep) {
        uint32_t i = open[open[0]];
        uintptr_t p = r->start + (uintptr_t)i * PAGE;
        if (p < limit) break;
        if (run_end && p + PAGE != run_start) {
            trap_wp(s, run_start, run_end, 1);
            run_end = 0;
        }
        if (!run_end) run_end = p + PAGE;
        run_start = p;
        page_state(r)[i] &= ~PAGE_OPEN;
        open[0]--;
    }
    if (run_end) trap_wp(s, run_start, run_end, 1);
    s->opened_region = NULL;
}

/* Regions separated by at most this many other VMAs share one walk: a walk costs
 * about a microsecond to start, and ~0.2 us more for each VMA in its range. */
#define SCAN_MERGE_GAP_VMAS 4

/* A walk costs ~1.5 us however little it covers (the system call, the seccomp filter,
 * the mmap lock), a compare of a page that did not change ~0.1 us. So the regions of a
 * range of at most this many pages (a library's .data, typically) are compared in full
 * at every restore instead, and never write-protected. */
#define COMPARE_MAX_PAGES 8

/* A region a walk of range would cover. */
static int walked_in(const struct fs_region *r, const struct fs_mapping_change *range) {
    return !r->trap_writes && r->start >= range->start && r->end <= range->end;
}

static void compare_small_ranges(struct fs_snapshot *s) {
    int kept = 0;
    for (int k = 0; k < s->scan_range_count; k++) {
        struct fs_mapping_change range = s->scan_ranges[k];
        size_t pages = 0;
        for (int i = 0; i < s->region_count; i++)
            if (walked_in(&s->regions[i], &range)) pages += page_count(&s->regions[i]);
        if (pages > COMPARE_MAX_PAGES) {
            s->scan_ranges[kept++] = range;
            continue;
        }
        for (int i = 0; i < s->region_count; i++)
            if (walked_in(&s->regions[i], &range)) s->regions[i].compared = 1;
    }
    s->scan_range_count = kept;
}

static void plan_scan_ranges(struct fs_snapshot *s) {
    s->scan_range_count = 0;
    int after_trapped = 0;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        if (r->trap_writes) { /* never walked, so never inside a merged range */
            after_trapped = 1;
            continue;
        }
        struct fs_mapping_change *last =
            s->scan_range_count && !after_trapped ? &s->scan_ranges[s->scan_range_count - 1] : NULL;
        after_trapped = 0;
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
    compare_small_ranges(s);
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
    int candidates = 0;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        memset(r->written, 0, page_count(r));
        r->compared = 0;
        /* never a compared region: the stack (the restore itself runs on it, and must not
         * trap there) and the rseq page (the kernel writes it) */
        r->trap_writes = (s->has_trapped_holes || r->end - r->start >= FS_BIG_REGION) && !r->compare_always;
        candidates |= r->trap_writes;
    }
    if (candidates) {
        s->trap_uffd = fs_move_fd_high((int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
        struct uffdio_api trap_api = {.api = UFFD_API, .features = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_WP_UNPOPULATED};
        if (s->trap_uffd < 0 || ioctl(s->trap_uffd, UFFDIO_API, &trap_api)) {
            snprintf(err, errlen, "userfaultfd with SIGBUS delivery failed: %s", strerror(errno));
            return -1;
        }
    }
    int any_trapped = 0;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        if (!r->trap_writes) continue;
        struct uffdio_register reg = {.range = {r->start, r->end - r->start}, .mode = UFFDIO_REGISTER_MODE_WP};
        if (ioctl(s->trap_uffd, UFFDIO_REGISTER, &reg)) { /* sync write-protect takes anonymous memory only */
            r->trap_writes = 0;
            continue;
        }
        any_trapped = 1;
        memset(page_state(r), 0, page_count(r));
        open_list(r)[0] = 0;
    }
    if (any_trapped) {
        /* the handler first: from the moment they are protected, a write there traps */
        fs_write_faults_install(s);
        s->track_kernel_writes = 1;
    }
    plan_scan_ranges(s);
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        if (r->compared) continue;
        struct uffdio_register reg = {.range = {r->start, r->end - r->start}, .mode = UFFDIO_REGISTER_MODE_WP};
        int failed = r->trap_writes ? trap_wp(s, r->start, r->end, 1)
                                    : ioctl(s->uffd, UFFDIO_REGISTER, &reg) || uffd_wp(s->uffd, r->start, r->end, 1);
        if (failed) {
            snprintf(err, errlen, "cannot write-protect %s (%#lx-%#lx) with userfaultfd: %s", r->name,
                     (unsigned long)r->start, (unsigned long)r->end, strerror(errno));
            return -1;
        }
    }
    for (int i = 0; i < s->scan_range_count; i++)
        FS_DEBUG("scan range %#lx-%#lx", (unsigned long)s->scan_ranges[i].start, (unsigned long)s->scan_ranges[i].end);
    for (int i = 0; i < s->region_count; i++) {
        const struct fs_region *r = &s->regions[i];
        if (r->trap_writes || r->compared)
            FS_DEBUG("%s %#lx-%#lx", r->trap_writes ? "write-trapped" : "compared", (unsigned long)r->start,
                     (unsigned long)r->end);
    }
    return 0;
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

/* Written ranges asked for per walk. The kernel bounces them through a buffer of this
 * many 24-byte entries (at most 512): up to 341 it comes from the slab, more costs a
 * page allocation and free at every call, ~0.4 us. More ranges than this take another
 * call, which resumes where the walk stopped. */
#define SCAN_VEC_LEN 128

static int scan_and_restore(struct fs_snapshot *s, uintptr_t start, uintptr_t end) {
    struct fs_page_region *vec = s->scan_vec;
    while (start < end) {
        struct fs_pm_scan_arg arg = {
            .size = sizeof arg, .start = start, .end = end, .vec = (uintptr_t)vec, .vec_len = SCAN_VEC_LEN,
            .category_mask = FS_PAGE_IS_WRITTEN | FS_PAGE_IS_WPALLOWED, .return_mask = FS_PAGE_IS_WRITTEN};
        long n = fs_raw_syscall(SYS_ioctl, s->pagemap_fd, FS_PAGEMAP_SCAN, (long)&arg, 0, 0, 0);
        if (n < 0) return -1;
        for (long k = 0; k < n; k++) {
            uintptr_t protect_from = 0;
            for (uintptr_t p = vec[k].start; p < vec[k].end; p += PAGE) {
                int protect = page_cools(p);
                if (protect && !protect_from) protect_from = p;
                if (!protect && protect_from) {
                    if (uffd_wp(s->uffd, protect_from, p, 1)) return -1;
                    protect_from = 0;
                }
            }
            if (protect_from && uffd_wp(s->uffd, protect_from, vec[k].end, 1)) return -1;
        }
        if (arg.walk_end <= start) break;
        start = arg.walk_end;
    }
    return 0;
}

/* The open pages of a trapped region: each is put back if it differs, and protected
 * again once it has matched the snapshot for its wait, TRAPPED_PAGE_COOL_MIN << level
 * restores in a row (adjust_wait). Longer than a walked page's wait: a trapped page's
 * next write costs a signal and two system calls (~4-6 us), a walked page's an
 * asynchronous fault, and a compare of a page ~0.1 us. Fuzzed inputs write many pages
 * one input in a few, some every few inputs and some once: with a flat wait of 4 the
 * ASan ini_parser runner took ~4 traps per input under `forkserver fuzz`, with 32 ~1,
 * and a wait learnt per page saves a further ~12% of compares and traps. */
static int collect_trapped(struct fs_snapshot *s, struct fs_region *r) {
    uint32_t *open = open_list(r), count = open[0], kept = 0;
    unsigned char *state = page_state(r);
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = open[1 + k];
        uintptr_t p = r->start + (uintptr_t)i * PAGE;
        if (fs_snapshot_restore_page_in(r, p)) r->written[i] = 0;
        else if (++r->written[i] >= page_wait(state[i])) {
            if (trap_wp(s, p, p + PAGE, 1)) return -1;
            r->written[i] = 0;
            state[i] = (unsigned char)((state[i] & ~PAGE_OPEN) | PAGE_COOLED);
            closed_at(r)[i] = (uint16_t)s->restore_count;
            continue;
        }
        open[1 + kept++] = i;
    }
    open[0] = kept;
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
        if (scan_and_restore(s, s->scan_ranges[i].start, s->scan_ranges[i].end)) return -1;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        if (r->trap_writes && collect_trapped(s, r)) return -1;
        if (r->compared) fs_collect_by_compare(r);
    }
    return 0;
}

size_t fs_trap_marks_size(const struct fs_region *r) {
    size_t n = page_count(r);
    return (closed_at_offset(n) + sizeof(uint16_t) * n + 7) & ~(size_t)7;
}

int fs_trap_page_has_copy(struct fs_region *r, uintptr_t page) {
    return !r->trap_writes || (page_state(r)[(page - r->start) / PAGE] & PAGE_COPIED);
}

const struct fs_tracker fs_tracker_pagemap_scan = {
    .name = "pagemap-scan", .probe = fs_probe_pagemap_scan, .start = pagemap_scan_start,
    .collect = pagemap_scan_collect, .note_kernel_write = pagemap_note_kernel_write,
    .kernel_write_done = pagemap_kernel_write_done, .handle_fault = pagemap_handle_fault,
};
