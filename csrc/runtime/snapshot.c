/* Takes the snapshot (memory, brk, fds, signal handlers, timers, FP environment) and
 * rolls the process back to it; verify mode proves a restore exact. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs_log.h"
#include "fs_runtime.h"
#include "track.h"

#define SNAP (&fs_st->snap)

/* glibc (2.35+) registers the main thread's rseq area at thread pointer + __rseq_offset */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

static void find_rseq_area(struct fs_snapshot *s) {
    s->rseq_start = s->rseq_end = 0;
    if (&__rseq_size == NULL || &__rseq_offset == NULL || __rseq_size == 0) return;
    s->rseq_start = (uintptr_t)__builtin_thread_pointer() + (uintptr_t)__rseq_offset;
    s->rseq_end = s->rseq_start + (__rseq_size < 32 ? 32 : __rseq_size);
}


struct fs_region *fs_snapshot_find_region(uintptr_t addr) {
    struct fs_snapshot *s = SNAP;
    int lo = 0, hi = s->region_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        struct fs_region *r = &s->regions[mid];
        if (addr < r->start) hi = mid - 1;
        else if (addr >= r->end) lo = mid + 1;
        else return r;
    }
    return NULL;
}

int fs_snapshot_overlaps_layout(uintptr_t start, uintptr_t end) {
    struct fs_snapshot *s = SNAP;
    for (int i = 0; i < s->layout_count; i++)
        if (start < s->layout[i].end && s->layout[i].start < end) return 1;
    return 0;
}

int fs_snapshot_layout_index(uintptr_t addr) {
    struct fs_snapshot *s = SNAP;
    for (int i = 0; i < s->layout_count; i++)
        if (addr >= s->layout[i].start && addr < s->layout[i].end) return i;
    return -1;
}

int fs_snapshot_fd_index(long fd) {
    struct fs_snapshot *s = SNAP;
    for (int i = 0; i < s->fd_count; i++)
        if (s->fds[i].fd == fd) return i;
    return -1;
}

void fs_snapshot_retire(int reason, const char *fmt, ...) {
    struct fs_snapshot *s = SNAP;
    if (s->retire_reason) return;
    s->retire_reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->retire_detail, sizeof s->retire_detail, fmt, ap);
    va_end(ap);
}

static void exclude(const void *start, size_t len) {
    struct fs_snapshot *s = SNAP;
    s->excluded[s->excluded_count].start = (uintptr_t)start;
    s->excluded[s->excluded_count].end = (uintptr_t)start + len;
    s->excluded_count++;
}

static int is_candidate(const struct fs_map_entry *e) {
    return e->priv && (e->prot & PROT_READ) && strcmp(e->name, "[vsyscall]") != 0;
}

/* A mapping the snapshot takes: private, readable and writable. */
static int is_taken(const struct fs_map_entry *e) { return is_candidate(e) && (e->prot & PROT_WRITE); }

/* The parts of a mapping outside the runtime's own memory. The kernel merges adjacent
 * anonymous mappings, so one line of /proc/self/maps can hold both the program's
 * memory (say, the main thread's TLS) and ours: split it, never skip it whole. */
static int restorable_pieces(const struct fs_map_entry *e, struct fs_mapping_change *out, int max) {
    struct fs_snapshot *s = SNAP;
    int n = 0;
    uintptr_t cur = e->start;
    while (cur < e->end && n < max) {
        uintptr_t next_cut = e->end, resume = e->end;
        for (int i = 0; i < s->excluded_count; i++) {
            struct fs_mapping_change *x = &s->excluded[i];
            if (x->end <= cur || x->start >= e->end) continue;
            if (x->start <= cur) { /* cur lies inside an excluded range: skip past it */
                next_cut = cur;
                resume = x->end < resume ? x->end : resume;
            } else if (x->start < next_cut) {
                next_cut = x->start;
                resume = x->end;
            }
        }
        if (next_cut > cur) {
            out[n].start = cur;
            out[n].end = next_cut;
            out[n].prot = e->prot;
            n++;
        }
        if (resume <= cur) break;
        cur = resume;
    }
    return n;
}

/* The offset a restore puts back: -1 for none (not seekable; the runtime's own input
 * file, which is written with pwrite, and pagemap fd, which only takes ioctls;
 * /dev/null, whose offset is always 0). */
static long restorable_offset(int fd) {
    if (fd == fs_st->input_fd || fd == SNAP->sparse_fd) return -1;
    struct stat st;
    if (fs_sys3(SYS_fstat, fd, (long)&st, 0) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) return -1;
    long offset = fs_sys3(SYS_lseek, fd, 0, SEEK_CUR);
    return offset < 0 ? -1 : offset;
}

/* Lists the open fds with the offsets a restore puts back. Returns the count, or -errno. */
int fs_fds_list(struct fs_saved_fd *out, int max) {
    int dir = (int)fs_sys3(SYS_openat, AT_FDCWD, (long)"/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return dir;
    char buf[4096];
    int count = 0;
    long n;
    while ((n = fs_sys3(SYS_getdents64, dir, (long)buf, sizeof buf)) > 0)
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
            int fd = 0;
            for (const char *c = d->d_name; *c; c++) fd = fd * 10 + (*c - '0');
            if (fd == dir || count >= max) continue;
            out[count].fd = fd;
            out[count].offset = restorable_offset(fd);
            count++;
        }
    fs_sys3(SYS_close, dir, 0, 0);
    return count;
}

static int record_fds(char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    int n = fs_fds_list(s->fds, FS_MAX_FDS);
    if (n < 0) {
        snprintf(err, errlen, "cannot list /proc/self/fd: %s", strerror(-n));
        return -1;
    }
    s->fd_count = n;
    return 0;
}

static void add_kept_fd(int fd) {
    struct fs_snapshot *s = SNAP;
    if (fd < 0 || s->fd_count >= FS_MAX_FDS) return;
    s->fds[s->fd_count].fd = fd;
    s->fds[s->fd_count].offset = -1;
    s->fd_count++;
}

static void sort_fds(void) {
    struct fs_snapshot *s = SNAP;
    for (int i = 1; i < s->fd_count; i++)
        for (int j = i; j > 0 && s->fds[j - 1].fd > s->fds[j].fd; j--) {
            struct fs_saved_fd t = s->fds[j];
            s->fds[j] = s->fds[j - 1];
            s->fds[j - 1] = t;
        }
}

static int add_one_region(const struct fs_map_entry *e, uintptr_t start, uintptr_t end, char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    if (s->region_count >= FS_MAX_REGIONS) {
        snprintf(err, errlen, "more than %d writable mappings", FS_MAX_REGIONS);
        return -1;
    }
    struct fs_region *r = &s->regions[s->region_count++];
    r->start = start;
    r->end = end;
    r->prot = e->prot;
    r->is_stack = strcmp(e->name, "[stack]") == 0;
    r->compare_always = r->is_stack || (s->rseq_start < r->end && r->start < s->rseq_end);
    snprintf(r->name, sizeof r->name, "%s", e->name[0] ? e->name : "[anon]");
    return 0;
}

/* The page(s) of the rseq area, which the kernel writes at every return to user space,
 * form a region of their own: it is compared at every restore, and may never trap a
 * write. The rest of their mapping (in ASan builds, megabytes of static TLS) is then
 * tracked like any other memory, instead of being compared or walked in full at every
 * restore. */
static int add_region(const struct fs_map_entry *e, uintptr_t start, uintptr_t end, char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    uintptr_t lo = s->rseq_start & ~(uintptr_t)(FS_PAGE_SIZE - 1);
    uintptr_t hi = (s->rseq_end + FS_PAGE_SIZE - 1) & ~(uintptr_t)(FS_PAGE_SIZE - 1);
    if (s->rseq_end == 0 || hi <= start || lo >= end) return add_one_region(e, start, end, err, errlen);
    if (lo < start) lo = start;
    if (hi > end) hi = end;
    if (start < lo && add_one_region(e, start, lo, err, errlen)) return -1;
    if (add_one_region(e, lo, hi, err, errlen)) return -1;
    return hi < end ? add_one_region(e, hi, end, err, errlen) : 0;
}

/* One restorable piece of a mapping: a region, or for a large anonymous one, a region
 * per populated range and holes between them (sparse.c). */
static int take_piece(const struct fs_map_entry *e, uintptr_t start, uintptr_t end, char *err, size_t errlen) {
    if (!fs_sparse_candidate(e, start, end)) return add_region(e, start, end, err, errlen);
    static struct fs_mapping_change populated[FS_MAX_REGIONS]; /* taken once, before any restore */
    int n = fs_sparse_populated(start, end, populated, FS_MAX_REGIONS - SNAP->region_count);
    if (n == -2) {
        snprintf(err, errlen, "more than %d writable mappings, counting each populated range of the %lu GiB "
                 "mapping at %#lx", FS_MAX_REGIONS, (unsigned long)((end - start) >> 30), (unsigned long)start);
        return -1;
    }
    if (n < 0) {
        if (end - start <= FS_SPARSE_UNPROBED_MAX) return add_region(e, start, end, err, errlen);
        snprintf(err, errlen, "cannot take the %lu GiB mapping at %#lx whole, and this kernel cannot tell which "
                 "of its pages are populated (PAGEMAP_SCAN needs Linux 6.7)", (unsigned long)((end - start) >> 30),
                 (unsigned long)start);
        return -1;
    }
    if (fs_sparse_add_mapping(start, end)) {
        snprintf(err, errlen, "more than %d large anonymous mappings", FS_MAX_SPARSE);
        return -1;
    }
    uintptr_t cur = start;
    for (int j = 0; j <= n; j++) {
        uintptr_t hole_end = j < n ? populated[j].start : end;
        if (fs_sparse_add_hole(cur, hole_end, e->prot, fs_sparse_trapped(start, end))) {
            snprintf(err, errlen, "more than %d unpopulated ranges in large mappings", FS_MAX_HOLES);
            return -1;
        }
        if (j < n && add_region(e, populated[j].start, populated[j].end, err, errlen)) return -1;
        if (j < n) cur = populated[j].end;
    }
    return 0;
}

int fs_snapshot_take(int backend, char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    s->backend = backend;
    s->tracker = fs_tracker_get(backend);
    s->track_kernel_writes = backend == FS_BACKEND_MPROTECT;
    s->owns_faults = 0;
    s->excluded_count = 0;
    for (int i = 0; i < fs_st->own_memory_count; i++)
        exclude((const void *)fs_st->own_memory[i].start, fs_st->own_memory[i].end - fs_st->own_memory[i].start);

    s->layout_count = fs_maps_read(s->layout, FS_MAX_MAP_ENTRIES);
    if (s->layout_count <= 0) {
        snprintf(err, errlen, "cannot read /proc/self/maps");
        return -1;
    }
    s->region_count = 0;
    find_rseq_area(s);
    s->hole_count = s->sparse_count = s->has_trapped_holes = 0;
    /* One mapping large enough to have its holes trapped (ASan's shadow) makes the runner
     * take write faults and watch kernel writes anyway; then the holes of every large
     * mapping are trapped: a trap costs nothing until an input writes there, a walk
     * costs a system call at every restore. */
    for (int i = 0; i < s->layout_count; i++) {
        const struct fs_map_entry *e = &s->layout[i];
        if (is_taken(e) && fs_sparse_candidate(e, e->start, e->end) && e->end - e->start >= FS_SPARSE_TRAP_MIN)
            s->has_trapped_holes = 1;
    }
    for (int i = 0; i < s->layout_count; i++) {
        struct fs_map_entry *e = &s->layout[i];
        if (!is_taken(e)) continue;
        struct fs_mapping_change pieces[8];
        int npieces = restorable_pieces(e, pieces, 8);
        for (int k = 0; k < npieces; k++)
            if (take_piece(e, pieces[k].start, pieces[k].end, err, errlen)) return -1;
    }
    size_t total = 0, pages = 0;
    for (int i = 0; i < s->region_count; i++) {
        total += s->regions[i].end - s->regions[i].start;
        pages += (s->regions[i].end - s->regions[i].start) / FS_PAGE_SIZE;
    }
    for (int i = 0; i < s->excluded_count; i++)
        FS_DEBUG("excluded %#lx-%#lx", (unsigned long)s->excluded[i].start, (unsigned long)s->excluded[i].end);
    for (int i = 0; i < s->region_count; i++)
        FS_DEBUG("region %#lx-%#lx %s", (unsigned long)s->regions[i].start, (unsigned long)s->regions[i].end,
                 s->regions[i].name);
    /* One bookkeeping mapping: contents, per-page marks, the dirty list, the scan vector. */
    size_t marks = 0;
    for (int i = 0; i < s->region_count; i++) marks += fs_tracker_marks_size(&s->regions[i]);
    marks = (marks + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1);
    size_t list = (pages * sizeof(uintptr_t) + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1);
    size_t vec = (FS_DIRTY_VEC * 24 + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1);
    size_t book_size = total + marks + list + vec;
    unsigned char *book = mmap(NULL, book_size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (book == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %zu MiB for the snapshot copy: %s", book_size >> 20, strerror(errno));
        return -1;
    }
    exclude(book, book_size);
    size_t off = 0, mark_off = 0;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        r->copy = book + off;
        fs_tracker_place_marks(r, book + total + mark_off);
        off += r->end - r->start;
        mark_off += fs_tracker_marks_size(r);
    }
    s->dirty_list = (uintptr_t *)(book + total + marks);
    s->dirty_cap = pages;
    s->dirty_count = 0;
    s->scan_vec = book + total + marks + list;

    s->brk_start = s->brk_now = (uintptr_t)fs_sys3(SYS_brk, 0, 0, 0);
    fs_process_state_save(&s->process_state);
    s->cwd_fd = fs_process_state_open_cwd();
    if (record_fds(err, errlen)) return -1;
    for (int sig = 1; sig <= 64; sig++) fs_raw_syscall(SYS_rt_sigaction, sig, 0, (long)&s->handlers[sig], FS_SIGSET_SIZE, 0, 0);
    for (int t = 0; t < 3; t++) getitimer(t, &s->timers[t]);
    fegetenv(&s->fenv);
    stack_t ss = {.ss_sp = fs_st->signal_stack, .ss_size = FS_ALT_STACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, &s->altstack_view_snap)) FS_PWARN("sigaltstack");
    s->altstack_view = s->altstack_view_snap;
    FS_DEBUG("signal stack %p-%p", (void *)fs_st->signal_stack, (void *)(fs_st->signal_stack + FS_ALT_STACK_SIZE));

    /* Track first, copy second: whatever runs in between (this function's own stack
     * writes included) is then either in the copy or seen as written. */
    if (s->tracker->start(s, err, errlen)) return -1;
    int trapped = fs_sparse_arm(err, errlen);
    if (trapped < 0) return -1;
    if (trapped) {
        if (!s->owns_faults) fs_write_faults_install(s);
        s->track_kernel_writes = 1;
    }
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        if (!r->trap_writes) fs_libc.memcpy(r->copy, (void *)r->start, r->end - r->start); /* trapped: on first write */
    }
    add_kept_fd(s->uffd);
    add_kept_fd(s->pagemap_fd);
    add_kept_fd(s->trap_uffd);
    sort_fds();
    s->new_mapping_count = s->reprotected_count = 0;
    s->discarded_count = s->reserved_changed_count = 0;
    s->new_fd_count = 0;
    s->fds_need_sweep = 0;
    s->changed_signals = 0;
    s->timers_changed = 0;
    s->retire_reason = 0;
    s->threads_started = 0;
    s->restore_count = 1;
    s->process_state_changed = 0;
    s->rlimits_changed = 0;
    /* the kernel must never block the signals the runtime lives on; the program still
     * sees them blocked if they were */
    fs_sys4(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&s->sigmask, sizeof s->sigmask);
    s->hidden_blocked = s->hidden_blocked_snap = s->sigmask & fs_hidden_signals();
    s->sigmask &= ~fs_hidden_signals();
    fs_sys4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&s->sigmask, 0, sizeof s->sigmask);
    if (fs_syscall_watch_install(s->track_kernel_writes, err, errlen)) return -1;
    return 0;
}

/* Installs one of the runtime's own handlers (SIGSYS, SIGSEGV, SIGBUS). The program's handler
 * becomes its view (what it reads and sets from now on), and the snapshot's handler
 * table shows ours, so that no restore removes it. The mask is empty: an execve from
 * the handler hands the program's own mask on. */
void fs_snapshot_take_over_signal(int sig, void (*handler)(int, siginfo_t *, void *),
                                  struct fs_kernel_sigaction *view, struct fs_kernel_sigaction *view_snap) {
    struct fs_snapshot *s = SNAP;
    fs_raw_syscall(SYS_rt_sigaction, sig, 0, (long)view_snap, FS_SIGSET_SIZE, 0, 0);
    *view = *view_snap;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    fs_libc.sigaction(sig, &sa, NULL);
    fs_raw_syscall(SYS_rt_sigaction, sig, 0, (long)&s->handlers[sig], FS_SIGSET_SIZE, 0, 0);
}

int fs_snapshot_restore_page(uintptr_t p) {
    struct fs_region *r = fs_snapshot_find_region(p);
    return r ? fs_snapshot_restore_page_in(r, p) : -1; /* none: heap above the snapshot's break */
}

int fs_snapshot_restore_page_in(struct fs_region *r, uintptr_t p) {
    struct fs_snapshot *s = SNAP;
    const unsigned char *copy = r->copy + (p - r->start);
    if (fs_libc.memcmp((void *)p, copy, FS_PAGE_SIZE) == 0) return 0;
    unsigned char rseq[64];
    size_t rseq_len = s->rseq_end - s->rseq_start;
    int keep_rseq = s->rseq_start < p + FS_PAGE_SIZE && p < s->rseq_end && rseq_len <= sizeof rseq;
    if (keep_rseq) fs_libc.memcpy(rseq, (void *)s->rseq_start, rseq_len);
    fs_libc.memcpy((void *)p, copy, FS_PAGE_SIZE);
    if (keep_rseq) fs_libc.memcpy((void *)s->rseq_start, rseq, rseq_len);
    s->dirty_pages++;
    return 1;
}

/* Compares one page with the snapshot, leaving out the kernel-owned rseq bytes. */
static int page_matches(struct fs_region *r, uintptr_t p) {
    struct fs_snapshot *s = SNAP;
    const unsigned char *copy = r->copy + (p - r->start);
    if (!(s->rseq_start < p + FS_PAGE_SIZE && p < s->rseq_end))
        return fs_libc.memcmp((void *)p, copy, FS_PAGE_SIZE) == 0;
    size_t a = s->rseq_start > p ? s->rseq_start - p : 0;
    size_t b = s->rseq_end < p + FS_PAGE_SIZE ? s->rseq_end - p : FS_PAGE_SIZE;
    return fs_libc.memcmp((void *)p, copy, a) == 0 && fs_libc.memcmp((void *)(p + b), copy + b, FS_PAGE_SIZE - b) == 0;
}

static void close_all_but_snapshot_fds(void) {
    struct fs_snapshot *s = SNAP;
    unsigned int next = 0;
    for (int i = 0; i < s->fd_count; i++) {
        unsigned int fd = (unsigned int)s->fds[i].fd;
        if (fd > next) fs_sys3(SYS_close_range, next, fd - 1, 0);
        next = fd + 1;
    }
    fs_sys3(SYS_close_range, next, ~0u, 0);
}

/* Closes the fds opened since the snapshot (logged by the syscall watch; a full sweep
 * when something was not logged) and rewinds the snapshot's seekable fds. */
static void restore_fds(void) {
    struct fs_snapshot *s = SNAP;
    if (s->fds_need_sweep) {
        close_all_but_snapshot_fds();
        s->fds_need_sweep = 0;
    } else {
        for (int i = 0; i < s->new_fd_count; i++) fs_sys3(SYS_close, s->new_fds[i], 0, 0);
    }
    s->new_fd_count = 0;
    for (int i = 0; i < s->fd_count; i++)
        if (s->fds[i].offset >= 0) fs_sys3(SYS_lseek, s->fds[i].fd, s->fds[i].offset, SEEK_SET);
}

/* Processes the input started and left behind: killed and reaped, so that the next
 * input starts without children (in fork mode they would outlive the input's process). */
static void reap_children(void) {
    for (int round = 0; round < 8; round++) {
        siginfo_t info;
        long r;
        do {
            info.si_pid = 0;
            r = fs_raw_syscall(SYS_waitid, P_ALL, 0, (long)&info, WEXITED | WNOHANG | __WALL, 0, 0);
        } while (r == 0 && info.si_pid); /* reaped a zombie: look again */
        if (r < 0) return;               /* ECHILD: none left */
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%ld/children", fs_sys3(SYS_gettid, 0, 0, 0));
        int fd = (int)fs_sys4(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0);
        long n = fd >= 0 ? fs_sys3(SYS_read, fd, (long)buf, sizeof buf - 1) : -1;
        if (fd >= 0) fs_sys3(SYS_close, fd, 0, 0);
        if (n <= 0) return;
        buf[n] = 0;
        for (char *p = buf; *p;) {
            long pid = 0;
            while (*p >= '0' && *p <= '9') pid = pid * 10 + (*p++ - '0');
            while (*p == ' ' || *p == '\n') p++;
            if (pid > 0) {
                fs_sys3(SYS_kill, pid, SIGKILL, 0);
                fs_raw_syscall(SYS_waitid, P_PID, pid, (long)&info, WEXITED | __WALL, 0, 0);
            }
        }
    }
}

static void restore_signals(struct fs_snapshot *s) {
    unsigned broken = fs_st->cfg.break_restore;
    if (s->changed_signals && !(broken & FS_BREAK_SIGNALS)) {
        for (int sig = 1; sig <= 64; sig++)
            if (s->changed_signals & (1ull << sig))
                fs_raw_syscall(SYS_rt_sigaction, sig, (long)&s->handlers[sig], 0, FS_SIGSET_SIZE, 0, 0);
        s->changed_signals = 0;
    }
    if (!(broken & FS_BREAK_SIGNALS)) {
        s->sigsys_view = s->sigsys_view_snap;
        s->segv_view = s->segv_view_snap;
        s->bus_view = s->bus_view_snap;
        s->altstack_view = s->altstack_view_snap;
    }
    if (!(broken & FS_BREAK_MASK)) {
        fs_sys4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&s->sigmask, 0, sizeof s->sigmask);
        s->hidden_blocked = s->hidden_blocked_snap;
    }
    if (s->timers_changed && !(broken & FS_BREAK_TIMERS)) {
        for (int t = 0; t < 3; t++) fs_raw_syscall(SYS_setitimer, t, (long)&s->timers[t], 0, 0, 0, 0);
        s->timers_changed = 0;
    }
}

/* Pages the program handed back to the kernel (MADV_DONTNEED and kin) read as zeros
 * or as the file now, without having been written: compare them with the snapshot.
 * The watch made them writable and tracked when the call was made, which is enough for
 * the mprotect backend and pagemap-scan's write-trapped regions (and this kernel
 * reports zapped pages of a write-protected range as written); a zapped page carries
 * no soft-dirty bit. */
static void restore_discarded(struct fs_snapshot *s) {
    for (int d = 0; d < s->discarded_count; d++) {
        uintptr_t lo = s->discarded[d].start, hi = s->discarded[d].end;
        for (int i = 0; i < s->region_count; i++) {
            struct fs_region *r = &s->regions[i];
            uintptr_t a = lo > r->start ? lo : r->start, b = hi < r->end ? hi : r->end;
            for (uintptr_t p = a; p < b; p += FS_PAGE_SIZE)
                if (fs_tracker_page_has_copy(s, r, p)) fs_snapshot_restore_page_in(r, p);
        }
    }
    s->discarded_count = 0;
}

/* Reservations (inaccessible anonymous memory) that the input mapped or unmapped
 * parts of, as allocators do as they grow: reserved afresh. */
static void restore_reservations(struct fs_snapshot *s) {
    for (int i = 0; i < s->reserved_changed_count; i++) {
        struct fs_mapping_change *m = &s->reserved_changed[i];
        fs_raw_syscall(SYS_mmap, (long)m->start, (long)(m->end - m->start), PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    }
    s->reserved_changed_count = 0;
}

int fs_snapshot_restore(char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    s->dirty_pages = 0;
    reap_children();
    for (int i = 0; i < s->new_mapping_count; i++)
        fs_sys3(SYS_munmap, (long)s->new_mappings[i].start, (long)(s->new_mappings[i].end - s->new_mappings[i].start), 0);
    restore_reservations(s);
    for (int i = s->reprotected_count - 1; i >= 0; i--)
        fs_sys3(SYS_mprotect, (long)s->reprotected[i].start, (long)(s->reprotected[i].end - s->reprotected[i].start),
            s->reprotected[i].prot);
    if (s->brk_now != s->brk_start) {
        fs_sys3(SYS_brk, (long)s->brk_start, 0, 0);
        s->brk_now = s->brk_start;
    }
    restore_discarded(s);
    if (s->tracker->collect(s)) {
        snprintf(err, errlen, "the %s backend could not collect dirty pages", s->tracker->name);
        return -1;
    }
    fs_sparse_reset_holes();
    s->restore_count++;
    restore_signals(s);
    restore_fds();
    fesetenv(&s->fenv);
    s->new_mapping_count = 0;
    s->reprotected_count = 0;
    if (s->process_state_changed && !(fs_st->cfg.break_restore & FS_BREAK_PROCESS_STATE)) {
        char why[160];
        if (fs_process_state_restore(&s->process_state, s->process_state_changed, s->rlimits_changed, s->cwd_fd,
                                     why, sizeof why))
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "%s", why); /* the next input gets a fresh runner */
        s->process_state_changed = 0;
        s->rlimits_changed = 0;
    }
    return 0;
}

static int same_action(const struct fs_kernel_sigaction *a, const struct fs_kernel_sigaction *b) {
    return a->handler == b->handler && a->flags == b->flags && a->mask == b->mask;
}

/* The kernel-side state: process state, signal dispositions (as the program sees them),
 * the mask, interval timers (armed or not, and their interval: a running timer's
 * remaining time moves on its own). */
static int verify_kernel_state(struct fs_snapshot *s, char *err, size_t errlen) {
    struct fs_process_state *now = &fs_st->process_state_scratch;
    fs_process_state_save(now);
    if (fs_process_state_compare(&s->process_state, now, err, errlen)) return -1;
    for (int sig = 1; sig <= 64; sig++) {
        struct fs_kernel_sigaction k;
        if (fs_raw_syscall(SYS_rt_sigaction, sig, 0, (long)&k, FS_SIGSET_SIZE, 0, 0) != 0) continue;
        if (!same_action(&k, &s->handlers[sig]))
            return snprintf(err, errlen, "the handler of signal %d differs from the snapshot's", sig), -1;
    }
    if (!same_action(&s->sigsys_view, &s->sigsys_view_snap) || !same_action(&s->segv_view, &s->segv_view_snap) ||
        !same_action(&s->bus_view, &s->bus_view_snap))
        return snprintf(err, errlen, "the program's SIGSYS, SIGSEGV or SIGBUS handler differs from the snapshot's"), -1;
    if (s->altstack_view.ss_sp != s->altstack_view_snap.ss_sp || s->altstack_view.ss_flags != s->altstack_view_snap.ss_flags)
        return snprintf(err, errlen, "the signal stack differs from the snapshot's"), -1;
    uint64_t mask;
    fs_sys4(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&mask, sizeof mask);
    if (mask != s->sigmask || s->hidden_blocked != s->hidden_blocked_snap)
        return snprintf(err, errlen, "the signal mask is %#llx, snapshot had %#llx",
                        (unsigned long long)(mask | s->hidden_blocked),
                        (unsigned long long)(s->sigmask | s->hidden_blocked_snap)), -1;
    for (int t = 0; t < 3; t++) {
        struct itimerval v;
        fs_raw_syscall(SYS_getitimer, t, (long)&v, 0, 0, 0, 0);
        const struct itimerval *w = &s->timers[t];
        int armed = v.it_value.tv_sec || v.it_value.tv_usec, was = w->it_value.tv_sec || w->it_value.tv_usec;
        if (armed != was || v.it_interval.tv_sec != w->it_interval.tv_sec || v.it_interval.tv_usec != w->it_interval.tv_usec)
            return snprintf(err, errlen, "interval timer %d is %s, snapshot had it %s", t, armed ? "armed" : "disarmed",
                            was ? "armed" : "disarmed"), -1;
    }
    return 0;
}

/* Slow and thorough: compares every restorable byte, the break, the layout, the fds and
 * the kernel-side state with the snapshot. */
int fs_snapshot_verify(char *err, size_t errlen) {
    struct fs_snapshot *s = SNAP;
    if (verify_kernel_state(s, err, errlen)) return -1;
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        for (uintptr_t p = r->start; p < r->end; p += FS_PAGE_SIZE)
            if (fs_tracker_page_has_copy(s, r, p) && !page_matches(r, p)) {
                snprintf(err, errlen, "region %s (%#lx-%#lx): page %#lx differs from the snapshot",
                         r->name, (unsigned long)r->start, (unsigned long)r->end, (unsigned long)p);
                return -1;
            }
    }
    if (fs_sparse_verify_holes(err, errlen)) return -1;
    uintptr_t brk_now = (uintptr_t)fs_sys3(SYS_brk, 0, 0, 0);
    if (brk_now != s->brk_start) {
        snprintf(err, errlen, "program break is %#lx, snapshot had %#lx", (unsigned long)brk_now,
                 (unsigned long)s->brk_start);
        return -1;
    }
    /* The fds: exactly the snapshot's, nothing more, nothing less. */
    int open_now = fs_fds_list(fs_st->fds_scratch, FS_MAX_FDS);
    if (open_now >= 0) {
        int stranger = -1;
        for (int i = 0; i < open_now; i++)
            if (fs_snapshot_fd_index(fs_st->fds_scratch[i].fd) < 0) stranger = fs_st->fds_scratch[i].fd;
        if (stranger >= 0 || open_now != s->fd_count) {
            snprintf(err, errlen, "%d fds open, the snapshot had %d%s", open_now, s->fd_count,
                     stranger >= 0 ? " (one opened since is still open)" : " (one was closed)");
            return -1;
        }
    }
    /* The layout: every region still mapped with its protection (the mprotect backend
     * keeps clean pages read-only), and no writable private memory outside the regions. */
    struct fs_map_entry *now = fs_st->maps_scratch;
    int n = fs_maps_read(now, FS_MAX_MAP_ENTRIES);
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        int prot_mask = s->backend == FS_BACKEND_MPROTECT ? ~PROT_WRITE : ~0;
        uintptr_t covered = r->start;
        for (int k = 0; k < n && covered < r->end; k++)
            if (now[k].start <= covered && now[k].end > covered && (now[k].prot & prot_mask) == (r->prot & prot_mask))
                covered = now[k].end;
        if (covered < r->end) {
            snprintf(err, errlen, "region %s (%#lx-%#lx) is no longer mapped as in the snapshot at %#lx", r->name,
                     (unsigned long)r->start, (unsigned long)r->end, (unsigned long)covered);
            return -1;
        }
    }
    for (int k = 0; k < n; k++) {
        if (!is_taken(&now[k])) continue;
        struct fs_mapping_change pieces[8];
        int npieces = restorable_pieces(&now[k], pieces, 8);
        for (int j = 0; j < npieces; j++)
            for (uintptr_t p = pieces[j].start; p < pieces[j].end; p += FS_PAGE_SIZE) {
                struct fs_region *r = fs_snapshot_find_region(p);
                const struct fs_hole *hole = r ? NULL : fs_sparse_hole_at(p);
                if (hole) {
                    p = hole->end - FS_PAGE_SIZE;
                    continue;
                }
                if (!r && strcmp(now[k].name, "[stack]") != 0) {
                    snprintf(err, errlen, "writable memory at %#lx (%s) was not there at the snapshot",
                             (unsigned long)p, now[k].name[0] ? now[k].name : "[anon]");
                    return -1;
                }
                if (r) p = r->end - FS_PAGE_SIZE;
            }
    }
    return 0;
}
