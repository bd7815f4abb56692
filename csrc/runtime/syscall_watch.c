/* The syscall watch: a seccomp filter in the snapshot runner that traps the system
 * calls a restore must know about (mapping changes, brk, signal handlers and mask,
 * timers, new fds, new threads, kernel-side process state, exec) and, when a backend
 * keeps memory read-only (mprotect, pagemap-scan's write-trapped regions), every call that may
 * write into memory. The SIGSYS handler notes each, then performs it from
 * fs_raw_syscall, whose address the filter lets through.
 *
 * Two kernel facts shape it. A filter is inherited by every child and across execve
 * and can never be removed; so it traps only calls made from the code that was mapped
 * at the snapshot (an exec'd program's code lies elsewhere), and in the runner's
 * children the handler only performs the call. And a SIGSYS the kernel forces while it
 * is blocked kills the process; so the program may never really block SIGSYS (nor
 * SIGSEGV and SIGBUS while the runtime owns them): it sees the mask it asked for, the kernel gets
 * the mask less those. */
#define _GNU_SOURCE
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <asm/prctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <ucontext.h>
#include <unistd.h>

#include "fs_log.h"
#include "fs_runtime.h"

extern char fs_raw_syscall_insn[];

#define SNAP (&fs_st->snap)
#define IS_ERR(r) ((unsigned long)(r) >= (unsigned long)-4095)
#define SIGBIT(sig) (1ull << ((sig) - 1))
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define FS_SS_AUTODISARM (1u << 31) /* linux/signal.h; glibc does not name it */
#define FS_MADV_DONTNEED_LOCKED 24 /* Linux 5.18 */
#define FS_MADV_GUARD_INSTALL 102  /* Linux 6.13 */

static long raw6(long nr, const long *a) { return fs_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]); }

/* Trapped in every runner. */
static const int always_trapped[] = {
    SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk, SYS_mremap, SYS_rt_sigaction, SYS_rt_sigprocmask,
    SYS_sigaltstack, SYS_setitimer, SYS_alarm, SYS_close_range, SYS_timer_create, SYS_execve, SYS_execveat,
    SYS_chdir, SYS_fchdir, SYS_umask, SYS_setrlimit, SYS_prlimit64, SYS_prctl, SYS_setpriority,
    SYS_sched_setaffinity, SYS_personality, SYS_arch_prctl,
};

/* Process state no restore can take back: the runner retires after the input. */
static const int irreversible[] = {
    SYS_setsid, SYS_setpgid, SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid,
    SYS_setfsuid, SYS_setfsgid, SYS_setgroups, SYS_capset, SYS_chroot, SYS_unshare, SYS_setns, SYS_seccomp,
    SYS_sched_setscheduler, SYS_sched_setparam, SYS_sched_setattr, SYS_ioprio_set, SYS_set_mempolicy, SYS_mbind,
    SYS_pkey_mprotect, SYS_pkey_alloc, SYS_modify_ldt, SYS_shmat, SYS_shmdt, SYS_remap_file_pages,
};

/* The calls that create fds; their results are logged so a restore closes exactly those. */
static const int fd_creators[] = {
    SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_socket, SYS_socketpair, SYS_pipe, SYS_pipe2,
    SYS_dup, SYS_accept, SYS_accept4, SYS_eventfd, SYS_eventfd2, SYS_epoll_create, SYS_epoll_create1,
    SYS_signalfd, SYS_signalfd4, SYS_timerfd_create, SYS_inotify_init, SYS_inotify_init1,
    SYS_fanotify_init, SYS_memfd_create, SYS_userfaultfd, SYS_perf_event_open, SYS_pidfd_open,
    SYS_pidfd_getfd, SYS_open_by_handle_at, SYS_mq_open, SYS_io_uring_setup, SYS_bpf, SYS_recvmsg, SYS_recvmmsg,
    SYS_fsopen, SYS_fsmount, SYS_open_tree, SYS_fspick, SYS_memfd_secret, SYS_landlock_create_ruleset,
};

/* Calls that never write into the caller's memory: the only ones a runner whose
 * memory is partly read-only lets through untrapped. Every other call is trapped, and
 * one that fails with EFAULT on memory the backend keeps read-only is run again once
 * that memory is writable. A call missing here only costs a trap. */
static const int never_write_memory[] = {
    SYS_write, SYS_pwrite64, SYS_writev, SYS_pwritev, SYS_pwritev2, SYS_lseek, SYS_getpid, SYS_getppid,
    SYS_gettid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getpgrp, SYS_getpgid, SYS_getsid,
    SYS_kill, SYS_tgkill, SYS_tkill, SYS_exit, SYS_exit_group, SYS_sched_yield, SYS_fsync, SYS_fdatasync,
    SYS_sync, SYS_syncfs, SYS_ftruncate, SYS_truncate, SYS_unlink, SYS_unlinkat, SYS_mkdir, SYS_mkdirat,
    SYS_rmdir, SYS_rename, SYS_renameat, SYS_renameat2, SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat,
    SYS_access, SYS_faccessat, SYS_faccessat2, SYS_chmod, SYS_fchmod, SYS_fchmodat, SYS_chown, SYS_fchown,
    SYS_lchown, SYS_fchownat, SYS_mlock, SYS_munlock, SYS_mlockall, SYS_munlockall, SYS_msync,
    SYS_flock, SYS_fadvise64, SYS_shutdown, SYS_sendto, SYS_sendmsg, SYS_connect, SYS_bind, SYS_listen,
    SYS_setsockopt, SYS_utimensat, SYS_utimes, SYS_fallocate, SYS_readahead, SYS_rt_sigreturn,
    SYS_restart_syscall, SYS_getpriority, SYS_sched_getscheduler, SYS_pause, SYS_membarrier,
    SYS_set_robust_list, SYS_set_tid_address, SYS_rseq, SYS_epoll_ctl, SYS_inotify_add_watch,
    SYS_inotify_rm_watch, SYS_timerfd_settime, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
    SYS_mknod, SYS_mknodat, SYS_sync_file_range,
};

/* Calls an input makes often that no watch needs (unless memory is kept read-only). */
static const int hot_untrapped[] = {
    SYS_read, SYS_write, SYS_lseek, SYS_pread64, SYS_fstat, SYS_newfstatat, SYS_getpid, SYS_exit_group,
};

/* ---- kernel writes into memory the backend keeps read-only ---- */

static void note(uintptr_t addr, size_t len) {
    if (!addr || !len) return;
    if (SNAP->tracker->note_kernel_write) SNAP->tracker->note_kernel_write(SNAP, addr, len);
    fs_sparse_note_write(addr, len);
}

static void note_iov(const struct iovec *iov, long count) {
    if (!iov) return;
    note((uintptr_t)iov, (size_t)count * sizeof *iov);
    for (long i = 0; i < count && i < 1024; i++) note((uintptr_t)iov[i].iov_base, iov[i].iov_len);
}

/* The calls that consume what they return (data read, a child reaped, a signal taken):
 * run again after an EFAULT, the data would be gone, so their buffers are made
 * writable before the call. Others are announced too where the size is known. */
static void note_kernel_writes(long nr, const long *a) {
    switch (nr) {
    case SYS_read: case SYS_pread64: case SYS_getdents64: case SYS_getdents: case SYS_readlink: note(a[1], a[2]); break;
    case SYS_readlinkat: note(a[2], a[3]); break;
    case SYS_readv: case SYS_preadv: case SYS_preadv2: note_iov((const struct iovec *)a[1], a[2]); break;
    case SYS_recvfrom: note(a[1], a[2]); note(a[4], sizeof(struct sockaddr_storage)); note(a[5], sizeof(socklen_t)); break;
    case SYS_recvmsg: {
        struct msghdr *m = (struct msghdr *)a[1];
        if (!m) break;
        note((uintptr_t)m, sizeof *m);
        note((uintptr_t)m->msg_name, m->msg_namelen);
        note((uintptr_t)m->msg_control, m->msg_controllen);
        note_iov(m->msg_iov, (long)m->msg_iovlen);
        break;
    }
    case SYS_msgrcv: note(a[1], sizeof(long) + (size_t)a[2]); break;
    case SYS_wait4: note(a[1], sizeof(int)); note(a[3], sizeof(struct rusage)); break;
    case SYS_waitid: note(a[2], sizeof(siginfo_t)); note(a[4], sizeof(struct rusage)); break;
    case SYS_rt_sigtimedwait: note(a[1], sizeof(siginfo_t)); break;
    case SYS_accept: case SYS_accept4: note(a[1], sizeof(struct sockaddr_storage)); note(a[2], sizeof(socklen_t)); break;
    case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2: note(a[1], (size_t)a[2] * sizeof(struct epoll_event)); break;
    case SYS_getrandom: case SYS_getcwd: note(a[0], a[1]); break;
    case SYS_pipe: case SYS_pipe2: note(a[0], 2 * sizeof(int)); break;
    case SYS_socketpair: note(a[3], 2 * sizeof(int)); break;
    case SYS_poll: case SYS_ppoll: note(a[0], (size_t)a[1] * sizeof(struct pollfd)); break;
    case SYS_select: case SYS_pselect6:
        for (int i = 1; i <= 3; i++) note(a[i], ((size_t)a[0] + 7) / 8);
        note(a[4], sizeof(struct timespec));
        break;
    }
}

static int in_tracked_region(uintptr_t addr) {
    return fs_snapshot_find_region(addr) != NULL || fs_sparse_in_trapped_hole(addr);
}

/* After an EFAULT: makes writable the next page of every argument that points into
 * tracked memory (the k-th page on the k-th attempt). 0 when no argument does. */
static int open_pointer_args(const long *a, int attempt) {
    int any = 0;
    for (int i = 0; i < 6; i++) {
        uintptr_t p = ((uintptr_t)a[i] & ~(FS_PAGE_SIZE - 1)) + (uintptr_t)attempt * FS_PAGE_SIZE;
        if ((uintptr_t)a[i] < FS_PAGE_SIZE || !in_tracked_region((uintptr_t)a[i]) || !in_tracked_region(p)) continue;
        note(p, FS_PAGE_SIZE);
        any = 1;
    }
    return any;
}

#define MAX_EFAULT_RETRIES 16

/* How many bytes a read of a regular file can return: its size past the offset. A
 * write-trapped buffer then has only those pages opened, not all of it (a 1 MiB buffer
 * that gets a 100-byte input costs one page, not 256). Anything else: the whole count. */
static size_t readable_bytes(long nr, const long *a) {
    size_t count = (size_t)a[2];
    struct fs_region *r = fs_snapshot_find_region((uintptr_t)a[1]);
    if (!(r && r->trap_writes) && !fs_sparse_in_trapped_hole((uintptr_t)a[1])) return count;
    struct stat st;
    if (fs_raw_syscall(SYS_fstat, a[0], (long)&st, 0, 0, 0, 0) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
        return count; /* /proc and its kind say 0 and still return data */
    long pos = nr == SYS_pread64 ? a[3] : fs_raw_syscall(SYS_lseek, a[0], 0, SEEK_CUR, 0, 0, 0);
    if (pos < 0) return count;
    size_t left = st.st_size > pos ? (size_t)(st.st_size - pos) : 0;
    return left < count ? left : count;
}

/* read and pread64 into write-trapped memory: only the pages the file can fill are
 * opened. When the kernel stopped where the opened pages end (the file grew, or its size
 * said less than it holds), the rest is opened and read on, so the program sees what one
 * unbounded call returns. The backend then takes back what the kernel did not reach. */
static long read_bounded(struct fs_snapshot *s, long nr, long *a) {
    uintptr_t buf = (uintptr_t)a[1];
    size_t count = (size_t)a[2], bound = readable_bytes(nr, a);
    if (bound) note(buf, bound);
    long r = raw6(nr, a);
    size_t done = IS_ERR(r) ? 0 : (size_t)r;
    uintptr_t opened_end = bound ? (buf + bound + FS_PAGE_SIZE - 1) & ~(uintptr_t)(FS_PAGE_SIZE - 1) : buf;
    /* a fault after some bytes ends the read at a page boundary; a read of nothing that
     * faulted fails with EFAULT (0 is the end of the file) */
    int stopped_at_trap = r == -EFAULT || (done > 0 && done < count && buf + done >= opened_end &&
                                           ((buf + done) & (FS_PAGE_SIZE - 1)) == 0);
    int read_on = bound < count && stopped_at_trap;
    if (read_on) {
        long rest[6] = {a[0], (long)(buf + done), (long)(count - done), nr == SYS_pread64 ? a[3] + (long)done : 0, 0, 0};
        note(buf + done, count - done);
        long more = raw6(nr, rest);
        if (!IS_ERR(more)) r = (long)(done + (size_t)more);
        else if (!done) r = more;
    }
    /* nothing opened, nothing to take back (the backend's mark is the last opening's) */
    if (bound || read_on) s->tracker->kernel_write_done(s, buf + (IS_ERR(r) ? 0 : (uintptr_t)r));
    return r;
}

static long run_writing_call(long nr, long *a) {
    struct fs_snapshot *s = SNAP;
    if (!s->track_kernel_writes) return raw6(nr, a);
    if (s->tracker->kernel_write_done && a[1] && a[2]) {
        /* these return how far the kernel wrote: the backend may take back the rest of
         * what it opened (an empty buffer is noted nowhere, so it has nothing to take) */
        if (nr == SYS_read || nr == SYS_pread64) return read_bounded(s, nr, a);
        if (nr == SYS_getdents64) {
            note_kernel_writes(nr, a);
            long r = raw6(nr, a);
            s->tracker->kernel_write_done(s, (uintptr_t)a[1] + (IS_ERR(r) ? 0 : (uintptr_t)r));
            return r;
        }
    }
    note_kernel_writes(nr, a);
    long r = raw6(nr, a);
    for (int k = 0; r == -EFAULT && k < MAX_EFAULT_RETRIES && open_pointer_args(a, k); k++) r = raw6(nr, a);
    return r;
}

/* ---- bookkeeping for the restore ---- */

static void log_fd(long fd) {
    struct fs_snapshot *s = SNAP;
    if (fd < 0) return;
    if (s->new_fd_count < FS_MAX_FDS) s->new_fds[s->new_fd_count++] = (int)fd;
    else s->fds_need_sweep = 1;
}

static void log_new_fds(long nr, const long *a, long r) {
    struct fs_snapshot *s = SNAP;
    if (IS_ERR(r)) return;
    switch (nr) {
    case SYS_pipe: case SYS_pipe2: log_fd(((int *)a[0])[0]); log_fd(((int *)a[0])[1]); return;
    case SYS_recvmsg:
        if (((struct msghdr *)a[1])->msg_controllen) s->fds_need_sweep = 1; /* maybe SCM_RIGHTS */
        return;
    case SYS_socketpair: log_fd(((int *)a[3])[0]); log_fd(((int *)a[3])[1]); return;
    case SYS_dup2: case SYS_dup3: log_fd(a[1]); return;
    case SYS_recvmmsg: case SYS_bpf: case SYS_io_uring_setup:
        s->fds_need_sweep = 1; /* fds passed or created in ways not worth parsing */
        return;
    case SYS_fcntl:
        if (a[1] == F_DUPFD || a[1] == F_DUPFD_CLOEXEC) log_fd(r);
        return;
    }
    for (size_t i = 0; i < COUNT(fd_creators); i++)
        if (fd_creators[i] == nr) log_fd(r);
}

static void log_mapping(struct fs_mapping_change *log, int *count, uintptr_t start, size_t len, int prot) {
    if (*count >= FS_MAX_NEW_MAPPINGS) {
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "more than %d mapping changes in one input", FS_MAX_NEW_MAPPINGS);
        return;
    }
    log[*count].start = start;
    log[*count].end = start + ((len + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1));
    log[*count].prot = prot;
    (*count)++;
}

static uintptr_t page_end(uintptr_t start, size_t len) { return start + ((len + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1)); }

/* Inaccessible private anonymous memory at the snapshot: an allocator's reserve, which
 * it maps parts of as it grows (ASan's does). */
static int is_reservation(const struct fs_map_entry *e) {
    return e->prot == PROT_NONE && e->priv && (e->name[0] == 0 || strncmp(e->name, "[anon", 5) == 0);
}

/* 1 when every page of [start, end) lay in a reservation at the snapshot. */
static int within_reservations(uintptr_t start, uintptr_t end) {
    struct fs_snapshot *s = SNAP;
    while (start < end) {
        int i = fs_snapshot_layout_index(start);
        if (i < 0 || !is_reservation(&s->layout[i])) return 0;
        start = s->layout[i].end;
    }
    return 1;
}

/* A mapping call that changes only reservations is undone by reserving them afresh;
 * any other change to the snapshot's mappings makes the runner retire. */
static void note_layout_change(uintptr_t start, size_t len, const char *what) {
    struct fs_snapshot *s = SNAP;
    uintptr_t end = page_end(start, len);
    if (!fs_snapshot_overlaps_layout(start, end)) return;
    if (within_reservations(start, end)) log_mapping(s->reserved_changed, &s->reserved_changed_count, start, end - start, 0);
    else fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "%s of a mapping of the snapshot", what);
}

/* MADV_DONTNEED and kin: the pages lose their contents behind every backend's back. */
static void note_discard(uintptr_t start, size_t len, long advice) {
    struct fs_snapshot *s = SNAP;
    if (advice == FS_MADV_GUARD_INSTALL && fs_snapshot_overlaps_layout(start, page_end(start, len)))
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "guard pages in a mapping of the snapshot");
    if (advice != MADV_DONTNEED && advice != MADV_FREE && advice != MADV_REMOVE && advice != FS_MADV_DONTNEED_LOCKED)
        return;
    uintptr_t end = page_end(start, len);
    for (int i = 0; i < s->region_count; i++) {
        struct fs_region *r = &s->regions[i];
        uintptr_t a = start > r->start ? start : r->start, b = end < r->end ? end : r->end;
        if (a >= b) continue;
        note(a, b - a); /* writable and tracked before the call */
        log_mapping(s->discarded, &s->discarded_count, a, b - a, 0);
    }
}

static void note_reprotect(uintptr_t start, size_t len, long new_prot) {
    struct fs_snapshot *s = SNAP;
    uintptr_t end = start + ((len + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1));
    for (int i = 0; i < s->layout_count; i++) {
        struct fs_map_entry *e = &s->layout[i];
        uintptr_t lo = start > e->start ? start : e->start, hi = end < e->end ? end : e->end;
        if (lo >= hi) continue;
        if (is_reservation(e)) {
            log_mapping(s->reserved_changed, &s->reserved_changed_count, lo, hi - lo, 0);
            continue;
        }
        int tracked = fs_snapshot_find_region(lo) != NULL;
        if (!tracked && fs_sparse_hole_at(lo)) { /* emptied by every restore anyway */
            fs_sparse_note_write(lo, hi - lo);  /* trapped: logged, so that the restore protects it again */
            log_mapping(s->reprotected, &s->reprotected_count, lo, hi - lo, e->prot);
            continue;
        }
        if (!tracked && (new_prot & PROT_WRITE)) {
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "a read-only mapping (%s) was made writable", e->name);
            continue;
        }
        if (tracked && s->tracker->note_reprotect) s->tracker->note_reprotect(s, lo, hi);
        log_mapping(s->reprotected, &s->reprotected_count, lo, hi - lo, e->prot);
    }
}

static void note_process_state(unsigned piece) { SNAP->process_state_changed |= piece; }

/* ---- signals: the runtime's own stay out of sight ---- */

uint64_t fs_hidden_signals(void) {
    return SIGBIT(SIGSYS) | (SNAP->owns_faults ? SIGBIT(SIGSEGV) | SIGBIT(SIGBUS) : 0);
}

static struct fs_kernel_sigaction *signal_view(int sig) {
    struct fs_snapshot *s = SNAP;
    if (sig == SIGSYS) return &s->sigsys_view;
    if (sig == SIGSEGV && s->owns_faults) return &s->segv_view;
    if (sig == SIGBUS && s->owns_faults) return &s->bus_view;
    return NULL;
}

static long handle_rt_sigaction(const long *a, int in_runner) {
    struct fs_snapshot *s = SNAP;
    int sig = (int)a[0];
    const struct fs_kernel_sigaction *act = (const struct fs_kernel_sigaction *)a[1];
    struct fs_kernel_sigaction *old = (struct fs_kernel_sigaction *)a[2];
    struct fs_kernel_sigaction *view = signal_view(sig);
    if (view) {
        if (a[3] != sizeof(uint64_t)) return -EINVAL;
        struct fs_kernel_sigaction prev = *view;
        if (act && in_runner) *view = *act; /* a child's change would land in the runner's view */
        if (old) *old = prev;
        return 0;
    }
    if (!act || sig < 1 || sig > 64) return raw6(SYS_rt_sigaction, a);
    struct fs_kernel_sigaction k = *act;
    k.mask &= ~fs_hidden_signals(); /* a handler's mask must not block them either */
    if (in_runner) s->changed_signals |= 1ull << sig;
    return fs_raw_syscall(SYS_rt_sigaction, sig, (long)&k, a[2], a[3], 0, 0);
}

/* Runs inside the SIGSYS handler, so the mask to read and change is the one the
 * handler returns to (uc_sigmask), not the handler's own. */
static long handle_rt_sigprocmask(const long *a, ucontext_t *uc, int in_runner) {
    struct fs_snapshot *s = SNAP;
    const uint64_t *set = (const uint64_t *)a[1];
    uint64_t *oldset = (uint64_t *)a[2], hidden = fs_hidden_signals();
    uint64_t *kernel_mask = (uint64_t *)(void *)&uc->uc_sigmask; /* the kernel's 64 bits lead glibc's set */
    if (a[3] != sizeof(uint64_t) || (set && a[0] != SIG_BLOCK && a[0] != SIG_UNBLOCK && a[0] != SIG_SETMASK))
        return -EINVAL;
    uint64_t seen = *kernel_mask | (s->hidden_blocked & hidden);
    if (set) {
        uint64_t wanted = a[0] == SIG_BLOCK ? seen | *set : a[0] == SIG_UNBLOCK ? seen & ~*set : *set;
        wanted &= ~(SIGBIT(SIGKILL) | SIGBIT(SIGSTOP));
        *kernel_mask = wanted & ~hidden;
        if (in_runner) s->hidden_blocked = wanted & hidden;
    }
    if (oldset) *oldset = seen;
    return 0;
}

/* A process started without address randomisation would map the exec'd program where
 * the runner's code was, and the inherited filter would trap its calls. */
static long handle_exec(long nr, long *a) {
    long persona = fs_raw_syscall(SYS_personality, 0xffffffff, 0, 0, 0, 0, 0);
    if (persona >= 0 && (persona & ADDR_NO_RANDOMIZE))
        fs_raw_syscall(SYS_personality, persona & ~ADDR_NO_RANDOMIZE, 0, 0, 0, 0, 0);
    long r = raw6(nr, a);
    if (persona >= 0 && (persona & ADDR_NO_RANDOMIZE)) fs_raw_syscall(SYS_personality, persona, 0, 0, 0, 0, 0);
    return r;
}

static long handle_prctl(long *a) {
    long option = a[0];
    if (option == PR_SET_NAME) note_process_state(FS_PS_COMM);
    else if (fs_prctl_setting_index(option) >= 0) note_process_state(FS_PS_PRCTL);
    else if (option == PR_SET_SECCOMP || option == PR_SET_MM || option == PR_SET_SECUREBITS ||
             option == PR_CAPBSET_DROP || option == PR_SET_SPECULATION_CTRL || option == PR_SET_FP_MODE ||
             option == PR_SET_TSC || option == PR_CAP_AMBIENT || option == PR_SET_IO_FLUSHER)
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "prctl(%ld) after the snapshot", option);
    return run_writing_call(SYS_prctl, a);
}

static int is_self(long pid) { return pid == 0 || pid == fs_st->runner_pid; }

/* In a process the runner started: only what keeps it alive and its memory writable. */
static long handle_in_child(long nr, long *a, ucontext_t *uc) {
    switch (nr) {
    case SYS_rt_sigaction: return handle_rt_sigaction(a, 0);
    case SYS_rt_sigprocmask: return handle_rt_sigprocmask(a, uc, 0);
    case SYS_execve: case SYS_execveat: return handle_exec(nr, a);
    case SYS_clone: return -EAGAIN; /* a thread: it cannot be started from the handler */
    }
    return run_writing_call(nr, a);
}

static long handle(long nr, long *a, ucontext_t *uc) {
    struct fs_snapshot *s = SNAP;
    switch (nr) {
    case SYS_mmap: {
        int fixed = (a[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && fs_snapshot_overlaps_layout(a[0], page_end(a[0], a[1]));
        if (fixed) note_layout_change(a[0], a[1], "mmap(MAP_FIXED)");
        long r = raw6(nr, a);
        if (!IS_ERR(r) && !fixed) log_mapping(s->new_mappings, &s->new_mapping_count, r, a[1], 0);
        return r;
    }
    case SYS_munmap:
        note_layout_change(a[0], a[1], "munmap");
        return raw6(nr, a);
    case SYS_madvise:
        note_discard(a[0], a[1], a[2]);
        return run_writing_call(nr, a);
    case SYS_mremap: {
        int at = fs_snapshot_layout_index(a[0]), prot = at >= 0 ? s->layout[at].prot : -1;
        if (prot >= 0) fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "mremap of a mapping of the snapshot");
        long r = raw6(nr, a);
        if (IS_ERR(r)) return r;
        log_mapping(s->new_mappings, &s->new_mapping_count, r, a[2], 0);
        /* pages the backend kept read-only move read-only: give the program its own
         * protection back (the runner retires after this input anyway) */
        if (prot >= 0 && s->tracker->handle_fault) fs_raw_syscall(SYS_mprotect, r, a[2], prot, 0, 0, 0);
        return r;
    }
    case SYS_mprotect:
        note_reprotect(a[0], a[1], a[2]);
        return raw6(nr, a);
    case SYS_brk: {
        /* a break below the snapshot's would lose heap that a restore cannot bring back:
         * refuse to go lower, as a kernel short of memory would; malloc copes */
        if (a[0] && (uintptr_t)a[0] < s->brk_start) a[0] = (long)s->brk_start;
        long r = fs_raw_syscall(nr, a[0], 0, 0, 0, 0, 0);
        s->brk_now = (uintptr_t)r;
        return r;
    }
    case SYS_rt_sigaction: return handle_rt_sigaction(a, 1);
    case SYS_rt_sigprocmask: return handle_rt_sigprocmask(a, uc, 1);
    case SYS_sigaltstack: {
        /* the runtime's handlers run on its own stack; the program sees and sets a view */
        const stack_t *ss = (const stack_t *)a[0];
        stack_t *old = (stack_t *)a[1];
        stack_t prev = s->altstack_view;
        if (ss) {
            if (ss->ss_flags & ~(SS_DISABLE | FS_SS_AUTODISARM)) return -EINVAL;
            if (!(ss->ss_flags & SS_DISABLE) && ss->ss_size < (size_t)MINSIGSTKSZ) return -ENOMEM;
            s->altstack_view = *ss;
            if (ss->ss_flags & SS_DISABLE) s->altstack_view = (stack_t){.ss_flags = SS_DISABLE};
        }
        if (old) *old = prev;
        return 0;
    }
    case SYS_setitimer: case SYS_alarm:
        s->timers_changed = 1;
        return run_writing_call(nr, a);
    case SYS_timer_create:
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "timer_create() after the snapshot");
        return run_writing_call(nr, a);
    case SYS_clone:
        fs_note_thread_start();
        return -EAGAIN;
    case SYS_close:
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "closed fd %ld, which was open at the snapshot", a[0]);
        return raw6(nr, a);
    case SYS_dup2: case SYS_dup3:
        if (fs_snapshot_fd_index(a[1]) >= 0)
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "replaced fd %ld, which was open at the snapshot", a[1]);
        break;
    case SYS_close_range:
        for (int i = 0; i < s->fd_count; i++)
            if (s->fds[i].fd >= a[0] && (unsigned long)s->fds[i].fd <= (unsigned long)a[1])
                fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "close_range() over fds open at the snapshot");
        break;
    case SYS_execve: case SYS_execveat: return handle_exec(nr, a);
    case SYS_chdir: case SYS_fchdir: note_process_state(FS_PS_CWD); break;
    case SYS_umask: note_process_state(FS_PS_UMASK); break;
    case SYS_setrlimit:
        note_process_state(FS_PS_RLIMITS);
        if (a[0] >= 0 && a[0] < FS_RLIMITS) s->rlimits_changed |= 1u << a[0];
        break;
    case SYS_prlimit64:
        if (a[2] && is_self(a[0]) && a[1] >= 0 && a[1] < FS_RLIMITS) {
            note_process_state(FS_PS_RLIMITS);
            s->rlimits_changed |= 1u << a[1];
        }
        break;
    case SYS_prctl: return handle_prctl(a);
    case SYS_setpriority:
        if (a[0] == PRIO_PROCESS && is_self(a[1])) note_process_state(FS_PS_PRIORITY);
        break;
    case SYS_sched_setaffinity:
        if (is_self(a[0])) note_process_state(FS_PS_AFFINITY);
        break;
    case SYS_personality:
        if ((unsigned long)a[0] != 0xffffffffu) note_process_state(FS_PS_PERSONALITY);
        break;
    case SYS_arch_prctl:
        if (a[0] == ARCH_SET_FS || a[0] == ARCH_SET_GS)
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "arch_prctl(%#lx) after the snapshot", a[0]);
        break;
    default:
        for (size_t i = 0; i < COUNT(irreversible); i++)
            if (irreversible[i] == nr)
                fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "system call %ld changes process state that "
                                   "cannot be restored", nr);
    }
    long r = run_writing_call(nr, a);
    if (s->watch_fds) log_new_fds(nr, a, r);
    return r;
}

static void sigsys_handler(int sig, siginfo_t *info, void *vctx) {
    (void)sig;
    int saved_errno = errno;
    ucontext_t *uc = vctx;
    greg_t *g = uc->uc_mcontext.gregs;
    long a[6] = {g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9]};
    g[REG_RAX] = fs_in_runner() ? handle(info->si_syscall, a, uc) : handle_in_child(info->si_syscall, a, uc);
    errno = saved_errno;
}

/* ---- the filter ---- */

#define MAX_FILTER 1024
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define IP_LO offsetof(struct seccomp_data, instruction_pointer)
#define IP_HI (offsetof(struct seccomp_data, instruction_pointer) + 4)

struct filter {
    struct sock_filter ins[MAX_FILTER];
    int n;
};

static void emit(struct filter *f, struct sock_filter ins) {
    if (f->n < MAX_FILTER) f->ins[f->n++] = ins;
}

#define STMT(code, k) emit(f, (struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) emit(f, (struct sock_filter)BPF_JUMP(code, k, jt, jf))

static void load(struct filter *f, unsigned offset) { STMT(BPF_LD | BPF_W | BPF_ABS, offset); }
static void ret(struct filter *f, unsigned action) { STMT(BPF_RET | BPF_K, action); }

static void ret_if_nr(struct filter *f, int nr, unsigned action) {
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1);
    ret(f, action);
}

static void ret_if_any_nr(struct filter *f, const int *nrs, size_t count, unsigned action) {
    for (size_t i = 0; i < count; i++) ret_if_nr(f, nrs[i], action);
}

/* nr == syscall and args[arg] is a snapshot fd -> trap; other calls of nr -> allow */
static void trap_if_fd_arg(struct filter *f, int nr, int arg) {
    struct fs_snapshot *s = SNAP;
    int block = 1 + 2 * s->fd_count + 1 + 1; /* load, (jeq, ret) per fd, ret allow, reload */
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, (unsigned)block);
    load(f, ARG_LO(arg));
    for (int i = 0; i < s->fd_count; i++) {
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)s->fds[i].fd, 0, 1);
        ret(f, SECCOMP_RET_TRAP);
    }
    ret(f, SECCOMP_RET_ALLOW);
    load(f, offsetof(struct seccomp_data, nr));
}

/* Lets through every call made from outside the watched code ranges: from the
 * runtime's own syscall instruction, and from any program a child exec'd. */
static void allow_unless_from_watched_code(struct filter *f) {
    struct fs_snapshot *s = SNAP;
    uintptr_t allowed_ip = (uintptr_t)fs_raw_syscall_insn + 2; /* the address after `syscall` */
    load(f, IP_LO);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)allowed_ip, 0, 3);
    load(f, IP_HI);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(allowed_ip >> 32), 0, 1);
    ret(f, SECCOMP_RET_ALLOW);
    /* per range [start, end) (same upper half): 5 instructions, the last a jump to the
     * syscall checks after the final ALLOW */
    for (int i = 0; i < s->code_range_count; i++) {
        uintptr_t start = s->code_ranges[i].start, end = s->code_ranges[i].end;
        int after = (s->code_range_count - i - 1) * 5; /* instructions to the final ALLOW */
        load(f, IP_HI);
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(start >> 32), 0, 3);
        load(f, IP_LO);
        JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)start, 0, 1);
        JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)(end - 1), 0, (unsigned)(after + 1));
    }
    ret(f, SECCOMP_RET_ALLOW);
}

static int build_filter(struct filter *f, int with_kernel_writes) {
    f->n = 0;
    load(f, offsetof(struct seccomp_data, arch));
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    ret(f, SECCOMP_RET_ALLOW);
    allow_unless_from_watched_code(f);
    load(f, offsetof(struct seccomp_data, nr));
    if (!with_kernel_writes) /* the calls an input makes most, let through first */
        ret_if_any_nr(f, hot_untrapped, COUNT(hot_untrapped), SECCOMP_RET_ALLOW);
    /* clone3 hides its flags from the filter: refuse it, and libc falls back to clone() */
    ret_if_nr(f, SYS_clone3, SECCOMP_RET_ERRNO | ENOSYS);
    ret_if_any_nr(f, always_trapped, COUNT(always_trapped), SECCOMP_RET_TRAP);
    ret_if_any_nr(f, irreversible, COUNT(irreversible), SECCOMP_RET_TRAP);
    ret_if_any_nr(f, fd_creators, COUNT(fd_creators), SECCOMP_RET_TRAP);
    ret_if_nr(f, SYS_dup2, SECCOMP_RET_TRAP);
    ret_if_nr(f, SYS_dup3, SECCOMP_RET_TRAP);
    if (with_kernel_writes) {
        ret_if_nr(f, SYS_fcntl, SECCOMP_RET_TRAP); /* F_GETLK and others write */
    } else {
        /* fcntl(F_DUPFD / F_DUPFD_CLOEXEC) creates fds */
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fcntl, 0, 5);
        load(f, ARG_LO(1));
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_DUPFD, 1, 0);
        JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_DUPFD_CLOEXEC, 0, 1);
        ret(f, SECCOMP_RET_TRAP);
        ret(f, SECCOMP_RET_ALLOW);
    }
    trap_if_fd_arg(f, SYS_close, 0);
    /* madvise: only the advice that throws pages' contents away (see note_discard) */
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 8);
    load(f, ARG_LO(2));
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_DONTNEED, 4, 0);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_FREE, 3, 0);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_REMOVE, 2, 0);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, FS_MADV_DONTNEED_LOCKED, 1, 0);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, FS_MADV_GUARD_INSTALL, 0, 1);
    ret(f, SECCOMP_RET_TRAP);
    ret(f, SECCOMP_RET_ALLOW);
    /* clone() of a thread (CLONE_THREAD); processes are let through: the child runs
     * the same handler, which sees it is not the runner. vfork() too, and never from
     * the handler: its child would run on the handler's stack, and its own traps would
     * overwrite the frame its parent returns through. */
    ret_if_nr(f, SYS_vfork, SECCOMP_RET_ALLOW);
    JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
    load(f, ARG_LO(0));
    JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1);
    ret(f, SECCOMP_RET_TRAP);
    ret(f, SECCOMP_RET_ALLOW);
    if (!with_kernel_writes) {
        ret(f, SECCOMP_RET_ALLOW);
    } else {
        ret_if_any_nr(f, never_write_memory, COUNT(never_write_memory), SECCOMP_RET_ALLOW);
        ret(f, SECCOMP_RET_TRAP);
    }
    return f->n < MAX_FILTER ? 0 : -1;
}

/* The executable mappings at the snapshot, merged where they touch, split at 4 GiB
 * boundaries (the filter compares the two halves of an address apart). */
static void collect_code_ranges(struct fs_snapshot *s) {
    s->code_range_count = 0;
    for (int i = 0; i < s->layout_count; i++) {
        struct fs_map_entry *e = &s->layout[i];
        if (!(e->prot & PROT_EXEC) || strcmp(e->name, "[vsyscall]") == 0) continue;
        for (uintptr_t a = e->start; a < e->end;) {
            uintptr_t next4g = (a | 0xffffffffull) + 1, b = e->end < next4g ? e->end : next4g;
            struct fs_mapping_change *last = s->code_range_count ? &s->code_ranges[s->code_range_count - 1] : NULL;
            if (last && last->end == a && (a & 0xffffffffull) != 0) last->end = b;
            else if (s->code_range_count < FS_MAX_CODE_RANGES) {
                s->code_ranges[s->code_range_count].start = a;
                s->code_ranges[s->code_range_count].end = b;
                s->code_range_count++;
            } else {
                last->end = b; /* out of slots: widen the last range (same upper half, see below) */
            }
            a = b;
        }
    }
    /* a widened range must still lie in one 4 GiB half */
    for (int i = 0; i < s->code_range_count; i++)
        if ((s->code_ranges[i].start >> 32) != ((s->code_ranges[i].end - 1) >> 32))
            s->code_ranges[i].end = (s->code_ranges[i].start | 0xffffffffull) + 1;
}

int fs_syscall_watch_install(int with_kernel_writes, char *err, size_t errlen) {
    static struct filter f; /* only read while installing */
    struct fs_snapshot *s = SNAP;
    s->watch_fds = 1;
    collect_code_ranges(s);
    for (int i = 0; i < s->code_range_count; i++)
        FS_DEBUG("watched code %#lx-%#lx", (unsigned long)s->code_ranges[i].start, (unsigned long)s->code_ranges[i].end);
    if (build_filter(&f, with_kernel_writes)) {
        snprintf(err, errlen, "syscall filter too long (%d fds open at the snapshot?)", s->fd_count);
        return -1;
    }

    /* the program's view of SIGSYS is what it had; the kernel gets ours */
    fs_snapshot_take_over_signal(SIGSYS, sigsys_handler, &s->sigsys_view, &s->sigsys_view_snap);

    struct sock_fprog prog = {.len = (unsigned short)f.n, .filter = f.ins};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
        snprintf(err, errlen, "cannot install the syscall watch (seccomp): %s", strerror(errno));
        return -1;
    }
    return 0;
}

void fs_note_thread_start(void) {
    SNAP->threads_started = 1;
    fs_snapshot_retire(FS_ERR_THREAD_STARTED,
                       "a thread was started after the snapshot; start threads before FORKSERVER_INIT() "
                       "or use --mode fork");
}
