/* The mprotect backend: writable ranges read-only, pages recorded as the SIGSEGV
 * handler sees them written. The stack and the mapping that holds the kernel's rseq area stay writable and are
 * compared in full: the kernel writes there on its own (signal frames, rseq cpu ids),
 * and both are small. Kernel writes into protected pages are announced by the
 * syscall watch (note_kernel_write) before the syscall runs. */
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
#include "track.h"


static void mprotect_note_kernel_write(struct fs_snapshot *s, uintptr_t addr, size_t len);

/* A write fault: 1 when the page was one of ours, now writable and on the dirty list. */
static int track_page(struct fs_snapshot *s, uintptr_t addr) {
    size_t before = s->dirty_count;
    mprotect_note_kernel_write(s, addr, 1);
    return s->dirty_count > before;
}

static int mprotect_arm_region(struct fs_region *r) {
    if (r->compare_always) return 0;
    return (int)fs_sys3(SYS_mprotect, (long)r->start, (long)(r->end - r->start), r->prot & ~PROT_WRITE);
}

static int mprotect_start(struct fs_snapshot *s, char *err, size_t errlen) {
    fs_write_faults_install(s);
    for (int i = 0; i < s->region_count; i++)
        if (mprotect_arm_region(&s->regions[i])) {
            snprintf(err, errlen, "mprotect of %s failed: %s", s->regions[i].name, strerror(errno));
            return -1;
        }
    return 0;
}

static int mprotect_collect(struct fs_snapshot *s) {
    for (size_t i = 0; i < s->dirty_count; i++) {
        uintptr_t page = s->dirty_list[i];
        struct fs_region *r = fs_snapshot_find_region(page);
        fs_snapshot_restore_page(page);
        r->written[(page - r->start) / PAGE] = 0;
        fs_sys3(SYS_mprotect, (long)page, PAGE, r->prot & ~PROT_WRITE);
    }
    s->dirty_count = 0;
    for (int i = 0; i < s->region_count; i++)
        if (s->regions[i].compare_always) fs_collect_by_compare(&s->regions[i]);
    return 0;
}

/* Unprotects every untracked page of [addr, addr+len), one mprotect per run of pages. */
static void mprotect_note_kernel_write(struct fs_snapshot *s, uintptr_t addr, size_t len) {
    s->dirty_count_before_write = s->dirty_count;
    if (!len) return;
    uintptr_t run_start = 0, run_end = 0;
    int run_prot = 0;
    for (uintptr_t p = addr & ~(PAGE - 1); p < addr + len; p += PAGE) {
        struct fs_region *r = fs_snapshot_find_region(p);
        unsigned char *mark = r && !r->compare_always ? &r->written[(p - r->start) / PAGE] : NULL;
        if (mark && !*mark) {
            *mark = 1;
            s->dirty_list[s->dirty_count++] = p;
            if (run_end == p && run_prot == r->prot) {
                run_end = p + PAGE;
                continue;
            }
        } else if (!run_end) {
            continue;
        }
        if (run_end) fs_sys3(SYS_mprotect, (long)run_start, (long)(run_end - run_start), run_prot);
        run_start = run_end = 0;
        if (mark) {
            run_start = p;
            run_end = p + PAGE;
            run_prot = r->prot;
        }
    }
    if (run_end) fs_sys3(SYS_mprotect, (long)run_start, (long)(run_end - run_start), run_prot);
}

/* The kernel wrote only below written_end: the pages this call unprotected above it
 * (the tail of the dirty list) are protected again, one mprotect per run. */
static void mprotect_kernel_write_done(struct fs_snapshot *s, uintptr_t written_end) {
    uintptr_t run_start = 0, run_end = 0;
    int run_prot = 0;
    while (s->dirty_count > s->dirty_count_before_write) {
        uintptr_t page = s->dirty_list[s->dirty_count - 1];
        if (page < written_end) break;
        struct fs_region *r = fs_snapshot_find_region(page);
        r->written[(page - r->start) / PAGE] = 0;
        s->dirty_count--;
        int prot = r->prot & ~PROT_WRITE;
        if (run_end && run_start == page + PAGE && run_prot == prot) {
            run_start = page; /* the list grows upwards: walking it back extends runs down */
            continue;
        }
        if (run_end) fs_sys3(SYS_mprotect, (long)run_start, (long)(run_end - run_start), run_prot);
        run_start = page;
        run_end = page + PAGE;
        run_prot = prot;
    }
    if (run_end) fs_sys3(SYS_mprotect, (long)run_start, (long)(run_end - run_start), run_prot);
}

/* The harness changes protection: treat the whole range as written, so that nothing
 * it writes afterwards escapes the restore. */
static void mprotect_note_reprotect(struct fs_snapshot *s, uintptr_t start, uintptr_t end) {
    mprotect_note_kernel_write(s, start, end - start);
}

const struct fs_tracker fs_tracker_mprotect = {
    .name = "mprotect", .probe = fs_probe_always, .start = mprotect_start, .collect = mprotect_collect,
    .note_kernel_write = mprotect_note_kernel_write, .kernel_write_done = mprotect_kernel_write_done,
    .note_reprotect = mprotect_note_reprotect, .handle_fault = track_page,
};
