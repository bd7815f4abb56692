/* Large anonymous mappings are taken by what is populated, not by what is reserved:
 * ASan reserves terabytes of shadow memory and touches megabytes of it. The populated
 * ranges of such a mapping become ordinary regions; the rest, its holes, held zeros at
 * the snapshot, and a restore hands what an input populated there back to the kernel
 * (MADV_DONTNEED), after which it reads as zeros again.
 *
 * Finding what an input populated must not cost a walk over the reserved size: walking
 * empty page tables costs ~10 ns per GiB-sized entry, 150 us over ASan's 15 TiB. So the
 * holes of a mapping of FS_SPARSE_TRAP_MIN or more are kept read-only and trapped: the
 * first write to a granule of one makes it writable and logs it (reads see the zero
 * page and need nothing). In a process that has one, every large mapping's holes are
 * trapped: the runner takes those faults anyway. Otherwise smaller mappings are walked
 * with PAGEMAP_SCAN at each restore, which skips their populated regions whole under
 * the pagemap-scan backend. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs_kernel.h"
#include "fs_runtime.h"

#define SNAP (&fs_st->snap)
#define MERGE_GAP (2ul << 20)       /* populated ranges closer than this share one region */
#define GRANULE FS_PAGE_SIZE        /* a trapped hole is made writable a page at a time */
#define HOLE_COOL_AFTER 2           /* restores a writable granule may stay clean */
#define SCAN_VEC 256

int fs_sparse_candidate(const struct fs_map_entry *e, uintptr_t start, uintptr_t end) {
    int anonymous = e->name[0] == 0 || strncmp(e->name, "[anon", 5) == 0 || strcmp(e->name, "[heap]") == 0;
    return anonymous && end - start >= FS_SPARSE_MIN;
}

/* The pagemap fd the probes use, opened once, above the program's fds. */
static int pagemap_fd(void) {
    struct fs_snapshot *s = SNAP;
    if (s->sparse_fd < 0)
        s->sparse_fd = fs_move_fd_high((int)fs_sys4(SYS_openat, AT_FDCWD, (long)"/proc/self/pagemap",
                                                    O_RDONLY | O_CLOEXEC, 0));
    return s->sparse_fd;
}

/* Calls found(start, end) for each run of pages of [start, end) that are present or
 * swapped out; with outside_wp_ranges, only those outside userfaultfd-registered
 * mappings (the kernel then skips those whole). -1 when the kernel cannot tell (no
 * PAGEMAP_SCAN before Linux 6.7). */
static int for_each_populated(uintptr_t start, uintptr_t end, int outside_wp_ranges,
                              void (*found)(uintptr_t, uintptr_t, void *), void *arg) {
    int fd = pagemap_fd();
    if (fd < 0) return -1;
    struct fs_page_region vec[SCAN_VEC];
    while (start < end) {
        struct fs_pm_scan_arg scan = {
            .size = sizeof scan, .start = start, .end = end, .vec = (uintptr_t)vec, .vec_len = SCAN_VEC,
            .category_anyof_mask = FS_PAGE_IS_PRESENT | FS_PAGE_IS_SWAPPED,
            .return_mask = FS_PAGE_IS_PRESENT | FS_PAGE_IS_SWAPPED};
        if (outside_wp_ranges) scan.category_inverted = scan.category_mask = FS_PAGE_IS_WPALLOWED;
        long n = fs_sys3(SYS_ioctl, fd, FS_PAGEMAP_SCAN, (long)&scan);
        if (n < 0) return -1;
        for (long k = 0; k < n; k++) found(vec[k].start, vec[k].end, arg);
        if (scan.walk_end <= start) break;
        start = scan.walk_end;
    }
    return 0;
}

struct populated { struct fs_mapping_change *out; int count, max, overflow; };

static void add_populated(uintptr_t start, uintptr_t end, void *arg) {
    struct populated *p = arg;
    struct fs_mapping_change *last = p->count ? &p->out[p->count - 1] : NULL;
    if (last && start - last->end < MERGE_GAP) {
        last->end = end;
        return;
    }
    /* out of slots: never widen the last range over what lies between (that may be
     * terabytes of shadow, and a region is tracked over its whole length) */
    if (p->count == p->max) {
        p->overflow = 1;
        return;
    }
    p->out[p->count].start = start;
    p->out[p->count].end = end;
    p->count++;
}

/* The populated ranges of [start, end), merged when closer than MERGE_GAP: their count,
 * -1 when the kernel cannot tell, -2 when there are more than max. */
int fs_sparse_populated(uintptr_t start, uintptr_t end, struct fs_mapping_change *out, int max) {
    struct populated p = {out, 0, max, 0};
    if (for_each_populated(start, end, 0, add_populated, &p)) return -1;
    return p.overflow ? -2 : p.count;
}

int fs_sparse_add_hole(uintptr_t start, uintptr_t end, int prot, int trapped) {
    struct fs_snapshot *s = SNAP;
    if (start >= end) return 0;
    if (s->hole_count >= FS_MAX_HOLES) return -1;
    struct fs_hole *h = &s->holes[s->hole_count++];
    h->start = start;
    h->end = end;
    h->prot = prot;
    h->trapped = trapped;
    return 0;
}

const struct fs_hole *fs_sparse_hole_at(uintptr_t addr) {
    struct fs_snapshot *s = SNAP;
    int lo = 0, hi = s->hole_count - 1; /* sorted: taken in address order */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (addr < s->holes[mid].start) hi = mid - 1;
        else if (addr >= s->holes[mid].end) lo = mid + 1;
        else return &s->holes[mid];
    }
    return NULL;
}

/* Hands the populated pages of [start, end) that lie in holes back to the kernel. */
static void drop_hole_pages(uintptr_t start, uintptr_t end, void *arg) {
    (void)arg;
    for (uintptr_t p = start; p < end;) {
        const struct fs_hole *hole = fs_sparse_hole_at(p);
        if (!hole) { /* a populated region's page */
            struct fs_region *r = fs_snapshot_find_region(p);
            p = r && r->end > p ? r->end : p + FS_PAGE_SIZE;
            continue;
        }
        uintptr_t stop = end < hole->end ? end : hole->end;
        fs_sys3(SYS_madvise, (long)p, (long)(stop - p), MADV_DONTNEED);
        p = stop;
    }
}

int fs_sparse_trapped(uintptr_t start, uintptr_t end) {
    return end - start >= FS_SPARSE_TRAP_MIN || SNAP->has_trapped_holes;
}

/* Notes a mapping whose holes each restore walks. Neighbours closer than MERGE_GAP
 * share one walk: ASan's shadow comes in dozens of pieces a few pages apart, and a walk
 * costs ~1 us to start. What lies between them is skipped page by page. */
int fs_sparse_add_mapping(uintptr_t start, uintptr_t end) {
    struct fs_snapshot *s = SNAP;
    if (fs_sparse_trapped(start, end)) return 0; /* trapped holes report their writes */
    struct fs_mapping_change *last = s->sparse_count ? &s->sparse[s->sparse_count - 1] : NULL;
    if (last && start >= last->end && start - last->end < MERGE_GAP) {
        last->end = end;
        return 0;
    }
    if (s->sparse_count >= FS_MAX_SPARSE) return -1;
    s->sparse[s->sparse_count].start = start;
    s->sparse[s->sparse_count].end = end;
    s->sparse_count++;
    return 0;
}

/* Makes the trapped holes read-only. 1 when there are any: the caller then owns SIGSEGV
 * and watches kernel writes, which would fail with EFAULT there. */
int fs_sparse_arm(char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    int any = 0;
    s->heated_count = 0;
    s->heated_overflow = 0;
    for (int i = 0; i < s->hole_count; i++) {
        struct fs_hole *h = &s->holes[i];
        if (!h->trapped) continue;
        if (fs_sys3(SYS_mprotect, (long)h->start, (long)(h->end - h->start), h->prot & ~PROT_WRITE)) {
            snprintf(err, errlen, "cannot make the unpopulated memory at %#lx read-only", (unsigned long)h->start);
            return -1;
        }
        any = 1;
    }
    return any;
}

static int heated(uintptr_t addr) {
    struct fs_snapshot *s = SNAP;
    for (int i = 0; i < s->heated_count; i++)
        if (s->heated[i].start <= addr && addr < s->heated[i].end) return 1;
    return 0;
}

/* Makes the granule of a trapped hole around addr writable, and logs it. */
static void heat(const struct fs_hole *h, uintptr_t addr) {
    struct fs_snapshot *s = SNAP;
    uintptr_t a = addr & ~(GRANULE - 1), b = a + GRANULE;
    if (a < h->start) a = h->start;
    if (b > h->end) b = h->end;
    fs_sys3(SYS_mprotect, (long)a, (long)(b - a), h->prot);
    if (s->heated_count < FS_MAX_HEATED) {
        struct fs_heated *g = &s->heated[s->heated_count++];
        g->start = a;
        g->end = b;
        g->prot = h->prot;
        g->written_at = s->restore_count;
    } else {
        s->heated_overflow = 1; /* the restore resets every trapped hole */
    }
}

int fs_sparse_handle_fault(uintptr_t addr) {
    const struct fs_hole *h = fs_sparse_hole_at(addr);
    if (!h || !h->trapped || SNAP->heated_overflow || heated(addr)) return 0; /* a real fault */
    heat(h, addr);
    return 1;
}

int fs_sparse_in_trapped_hole(uintptr_t addr) {
    const struct fs_hole *h = fs_sparse_hole_at(addr);
    return h && h->trapped;
}

/* The work follows the trapped holes the range meets, not its length: a program may
 * mprotect a terabyte of a hole, and every kernel write is announced here. */
void fs_sparse_note_write(uintptr_t addr, size_t len) {
    struct fs_snapshot *s = SNAP;
    uintptr_t end = addr + len;
    for (int i = 0; i < s->hole_count && !s->heated_overflow; i++) {
        const struct fs_hole *h = &s->holes[i];
        if (!h->trapped || h->end <= addr || h->start >= end) continue;
        uintptr_t from = addr > h->start ? addr : h->start, to = end < h->end ? end : h->end;
        for (uintptr_t p = from & ~(GRANULE - 1); p < to && !s->heated_overflow; p += GRANULE) {
            uintptr_t at = p < from ? from : p;
            if (!heated(at)) heat(h, at);
        }
    }
}

static void drop_and_protect(uintptr_t start, uintptr_t end, int prot) {
    fs_sys3(SYS_madvise, (long)start, (long)(end - start), MADV_DONTNEED);
    fs_sys3(SYS_mprotect, (long)start, (long)(end - start), prot & ~PROT_WRITE);
}

/* Zeroes the pages of a writable granule that are not zero; 1 if there were any. */
static int zero_granule(const struct fs_heated *g) {
    static const uint64_t zero_page[FS_PAGE_SIZE / sizeof(uint64_t)];
    int written = 0;
    for (uintptr_t p = g->start; p < g->end; p += FS_PAGE_SIZE)
        if (fs_libc.memcmp((const void *)p, zero_page, FS_PAGE_SIZE) != 0) {
            fs_libc.memset((void *)p, 0, FS_PAGE_SIZE);
            written = 1;
        }
    return written;
}

/* Trapped holes. A granule an input wrote stays writable while inputs keep writing it
 * (ASan poisons the same shadow at every input): the restore zeroes its written pages,
 * which costs a compare of 16 pages, where protecting it and taking the fault again
 * would cost two system calls and a signal. One left clean for HOLE_COOL_AFTER
 * restores is handed back and protected again. */
static void reset_trapped(struct fs_snapshot *s) {
    if (s->heated_overflow) {
        for (int i = 0; i < s->hole_count; i++)
            if (s->holes[i].trapped) drop_and_protect(s->holes[i].start, s->holes[i].end, s->holes[i].prot);
        s->heated_overflow = 0;
        s->heated_count = 0;
        return;
    }
    int kept = 0;
    for (int i = 0; i < s->heated_count; i++) {
        struct fs_heated g = s->heated[i];
        if (zero_granule(&g)) g.written_at = s->restore_count;
        if (s->restore_count - g.written_at >= HOLE_COOL_AFTER) drop_and_protect(g.start, g.end, g.prot);
        else s->heated[kept++] = g;
    }
    s->heated_count = kept;
}

static void reset_walked(uintptr_t start, uintptr_t end, int skip_regions) {
    if (start < end && for_each_populated(start, end, skip_regions, drop_hole_pages, NULL))
        drop_hole_pages(start, end, NULL); /* cannot tell: drop every hole */
}

/* A populated region the walk would otherwise cover page by page (~2 ns a page, where
 * a walk of its own costs ~1 us to start): under pagemap-scan the kernel skips the
 * async write-protected regions whole, not the write-trapped ones (sync); under the
 * other backends it skips none. */
#define WALK_AROUND_MIN (1ul << 20)

static int walk_goes_around(const struct fs_region *r, int kernel_skips_regions) {
    return r->trap_writes || (!kernel_skips_regions && r->end - r->start >= WALK_AROUND_MIN);
}

/* Untrapped holes: one walk per mapping (between its large regions) finds what the
 * input populated there, usually nothing. A MADV_DONTNEED per hole would cost ~2 us
 * each even with nothing to drop. */
void fs_sparse_reset_holes(void) {
    struct fs_snapshot *s = SNAP;
    if (s->heated_count || s->heated_overflow) reset_trapped(s);
    int skip_regions = s->backend == FS_BACKEND_PAGEMAP_SCAN;
    int k = 0; /* regions and sparse mappings are both in address order: one pass over each */
    for (int i = 0; i < s->sparse_count; i++) {
        uintptr_t from = s->sparse[i].start, end = s->sparse[i].end;
        while (k < s->region_count && s->regions[k].end <= from) k++;
        for (; k < s->region_count && s->regions[k].start < end; k++) {
            const struct fs_region *r = &s->regions[k];
            if (!walk_goes_around(r, skip_regions)) continue;
            reset_walked(from, r->start, skip_regions);
            from = r->end;
        }
        reset_walked(from, end, skip_regions);
    }
}

struct hole_check { uintptr_t bad; };

static void check_zero(uintptr_t start, uintptr_t end, void *arg) {
    struct hole_check *c = arg;
    for (uintptr_t p = start; p < end && !c->bad; p += sizeof(uint64_t))
        if (*(const uint64_t *)p) c->bad = p;
}

int fs_sparse_verify_holes(char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    for (int i = 0; i < s->hole_count; i++) {
        struct hole_check c = {0};
        for_each_populated(s->holes[i].start, s->holes[i].end, 0, check_zero, &c);
        if (c.bad) {
            snprintf(err, errlen, "unpopulated memory at %#lx was zero at the snapshot and is not now",
                     (unsigned long)c.bad);
            return -1;
        }
    }
    return 0;
}
