/* The syscall watch: a seccomp filter in the snapshot runner that traps the few system
 * calls a restore must know about (mapping changes, brk, signal handlers, timers, new
 * threads, closing snapshot fds) and, for the mprotect backend, the calls through which
 * the kernel writes into memory. The SIGSYS handler notes each, then performs it from
 * fs_raw_syscall, whose address the filter lets through. */
#define _GNU_SOURCE
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#include "fs_log.h"
#include "fs_runtime.h"

extern char fs_raw_syscall_insn[];

#define SNAP (&fs_st->snap)
#define IS_ERR(r) ((unsigned long)(r) >= (unsigned long)-4095)

static const int always_trapped[] = {
    SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk, SYS_rt_sigaction, SYS_mremap,
    SYS_setitimer, SYS_alarm, SYS_close_range, SYS_timer_create,
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

/* The calls through which the kernel writes into the caller's memory. */
static const int kernel_writers[] = {
    SYS_read, SYS_pread64, SYS_readv, SYS_preadv, SYS_preadv2, SYS_recvfrom, SYS_recvmsg,
    SYS_fstat, SYS_stat, SYS_lstat, SYS_newfstatat, SYS_statx, SYS_getdents64, SYS_getrandom,
    SYS_readlink, SYS_readlinkat, SYS_getcwd, SYS_pipe, SYS_pipe2, SYS_socketpair, SYS_wait4,
    SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6, SYS_epoll_wait, SYS_epoll_pwait, SYS_uname,
    SYS_sysinfo, SYS_getrusage, SYS_times, SYS_prlimit64, SYS_getrlimit, SYS_getsockopt,
    SYS_accept, SYS_accept4, SYS_getsockname, SYS_getpeername, SYS_rt_sigprocmask,
    SYS_sigaltstack, SYS_getitimer, SYS_clock_gettime, SYS_gettimeofday, SYS_time,
    SYS_nanosleep, SYS_clock_nanosleep, SYS_ioctl, SYS_fcntl, SYS_sched_getaffinity,
    SYS_getresuid, SYS_getresgid, SYS_getgroups, SYS_futex,
};

static void note(uintptr_t addr, size_t len) {
    if (addr && len && SNAP->tracker->note_kernel_write) SNAP->tracker->note_kernel_write(SNAP, addr, len);
}

static void note_iov(const struct iovec *iov, long count) {
    if (!iov) return;
    note((uintptr_t)iov, (size_t)count * sizeof *iov);
    for (long i = 0; i < count && i < 1024; i++) note((uintptr_t)iov[i].iov_base, iov[i].iov_len);
}

static void note_kernel_writes(long nr, const long *a) {
    switch (nr) {
    case SYS_read: case SYS_pread64: case SYS_getdents64: case SYS_readlink: note(a[1], a[2]); break;
    case SYS_readlinkat: note(a[2], a[3]); break;
    case SYS_readv: case SYS_preadv: case SYS_preadv2: note_iov((const struct iovec *)a[1], a[2]); break;
    case SYS_recvfrom: note(a[1], a[2]); note(a[4], 128); note(a[5], 4); break;
    case SYS_recvmsg: {
        struct msghdr *m = (struct msghdr *)a[1];
        if (!m) break;
        note((uintptr_t)m, sizeof *m);
        note((uintptr_t)m->msg_name, m->msg_namelen);
        note((uintptr_t)m->msg_control, m->msg_controllen);
        note_iov(m->msg_iov, (long)m->msg_iovlen);
        break;
    }
    case SYS_fstat: case SYS_stat: case SYS_lstat: note(a[1], 144); break;
    case SYS_newfstatat: note(a[2], 144); break;
    case SYS_statx: note(a[4], 256); break;
    case SYS_getrandom: case SYS_getcwd: note(a[0], a[1]); break;
    case SYS_pipe: case SYS_pipe2: note(a[0], 8); break;
    case SYS_socketpair: note(a[3], 8); break;
    case SYS_wait4: note(a[1], 4); note(a[3], 144); break;
    case SYS_poll: case SYS_ppoll: note(a[0], (size_t)a[1] * 8); break;
    case SYS_select: case SYS_pselect6: note(a[1], 128); note(a[2], 128); note(a[3], 128); note(a[4], 16); break;
    case SYS_epoll_wait: case SYS_epoll_pwait: note(a[1], (size_t)a[2] * 12); break;
    case SYS_uname: note(a[0], 390); break;
    case SYS_sysinfo: note(a[0], 112); break;
    case SYS_getrusage: note(a[1], 144); break;
    case SYS_times: note(a[0], 32); break;
    case SYS_prlimit64: note(a[3], 16); break;
    case SYS_getrlimit: note(a[1], 16); break;
    case SYS_getsockopt: note(a[3], 256); note(a[4], 4); break;
    case SYS_accept: case SYS_accept4: case SYS_getsockname: case SYS_getpeername: note(a[1], 128); note(a[2], 4); break;
    case SYS_rt_sigprocmask: note(a[2], 8); break;
    case SYS_rt_sigaction: note(a[2], sizeof(struct fs_kernel_sigaction)); break;
    case SYS_sigaltstack: note(a[1], sizeof(stack_t)); break;
    case SYS_getitimer: note(a[1], 32); break;
    case SYS_setitimer: note(a[2], 32); break;
    case SYS_clock_gettime: note(a[1], 16); break;
    case SYS_gettimeofday: note(a[0], 16); break;
    case SYS_time: note(a[0], 8); break;
    case SYS_nanosleep: note(a[1], 16); break;
    case SYS_clock_nanosleep: note(a[3], 16); break;
    case SYS_ioctl: case SYS_fcntl: note(a[2], 64); break; /* size unknown: the likely struct */
    case SYS_sched_getaffinity: note(a[2], a[1]); break;
    case SYS_getresuid: case SYS_getresgid: note(a[0], 4); note(a[1], 4); note(a[2], 4); break;
    case SYS_getgroups: note(a[1], (size_t)a[0] * 4); break;
    case SYS_futex: note(a[0], 4); break;
    }
}

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
    for (size_t i = 0; i < sizeof fd_creators / sizeof fd_creators[0]; i++)
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

static void note_reprotect(uintptr_t start, size_t len, long new_prot) {
    struct fs_snapshot *s = SNAP;
    uintptr_t end = start + ((len + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1));
    for (int i = 0; i < s->layout_count; i++) {
        struct fs_map_entry *e = &s->layout[i];
        uintptr_t lo = start > e->start ? start : e->start, hi = end < e->end ? end : e->end;
        if (lo >= hi) continue;
        int tracked = fs_snapshot_find_region(lo) != NULL;
        if (!tracked && (new_prot & PROT_WRITE)) {
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "a read-only mapping (%s) was made writable", e->name);
            continue;
        }
        if (tracked && s->tracker->note_reprotect) s->tracker->note_reprotect(s, lo, hi);
        log_mapping(s->reprotected, &s->reprotected_count, lo, hi - lo, e->prot);
    }
}

static long handle_rt_sigaction(const long *a) {
    struct fs_snapshot *s = SNAP;
    int sig = (int)a[0];
    if (sig == SIGSYS && a[1]) return 0; /* the watch owns SIGSYS */
    if (sig == SIGSEGV && a[1] && s->owns_segv) {
        /* our handler stays; it forwards real faults to the harness's handler */
        struct fs_kernel_sigaction *old = (struct fs_kernel_sigaction *)a[2];
        if (old) {
            if (s->user_segv_set) *old = s->user_segv;
            else memset(old, 0, sizeof *old);
        }
        s->user_segv = *(const struct fs_kernel_sigaction *)a[1];
        s->user_segv_set = 1;
        return 0;
    }
    if (a[1] && sig > 0 && sig <= 64) s->changed_signals |= 1ull << sig;
    return fs_raw_syscall(SYS_rt_sigaction, a[0], a[1], a[2], a[3], 0, 0);
}

static long handle(long nr, long *a) {
    struct fs_snapshot *s = SNAP;
    if (s->tracker->kernel_write_done && (nr == SYS_read || nr == SYS_pread64 || nr == SYS_getdents64)) {
        /* these return how far the kernel wrote: the backend may take back the rest */
        note_kernel_writes(nr, a);
        long r = fs_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        s->tracker->kernel_write_done(s, (uintptr_t)a[1] + (IS_ERR(r) ? 0 : (uintptr_t)r));
        return r;
    }
    if (s->track_kernel_writes) note_kernel_writes(nr, a);
    switch (nr) {
    case SYS_mmap: {
        if ((a[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && fs_snapshot_overlaps_layout(a[0], a[0] + a[1]))
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "mmap(MAP_FIXED) over a mapping of the snapshot");
        long r = fs_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (!IS_ERR(r)) log_mapping(s->new_mappings, &s->new_mapping_count, r, a[1], 0);
        return r;
    }
    case SYS_munmap:
        if (fs_snapshot_overlaps_layout(a[0], a[0] + a[1]))
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "munmap of a mapping of the snapshot");
        break;
    case SYS_mremap: {
        if (fs_snapshot_overlaps_layout(a[0], a[0] + a[1]))
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "mremap of a mapping of the snapshot");
        long r = fs_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (!IS_ERR(r)) log_mapping(s->new_mappings, &s->new_mapping_count, r, a[2], 0);
        return r;
    }
    case SYS_mprotect:
        note_reprotect(a[0], a[1], a[2]);
        break;
    case SYS_brk: {
        /* a break below the snapshot's would lose heap that a restore cannot bring back:
         * refuse to go lower, as a kernel short of memory would; malloc copes */
        if (a[0] && (uintptr_t)a[0] < s->brk_start) a[0] = (long)s->brk_start;
        long r = fs_raw_syscall(nr, a[0], 0, 0, 0, 0, 0);
        s->brk_now = (uintptr_t)r;
        return r;
    }
    case SYS_rt_sigaction:
        return handle_rt_sigaction(a);
    case SYS_setitimer: case SYS_alarm:
        s->timers_changed = 1;
        break;
    case SYS_timer_create:
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "timer_create() after the snapshot");
        break;
    case SYS_clone:
        fs_note_thread_start();
        return -EAGAIN;
    case SYS_close:
        fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "closed fd %ld, which was open at the snapshot", a[0]);
        break;
    case SYS_dup2: case SYS_dup3:
        if (fs_snapshot_fd_index(a[1]) >= 0)
            fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "replaced fd %ld, which was open at the snapshot", a[1]);
        break;
    case SYS_close_range:
        for (int i = 0; i < s->fd_count; i++)
            if (s->fds[i].fd >= a[0] && (unsigned long)s->fds[i].fd <= (unsigned long)a[1])
                fs_snapshot_retire(FS_ERR_MAPPING_UNRESTORABLE, "close_range() over fds open at the snapshot");
        break;
    }
    long r = fs_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (s->watch_fds) log_new_fds(nr, a, r);
    return r;
}

static void sigsys_handler(int sig, siginfo_t *info, void *vctx) {
    (void)sig;
    int saved_errno = errno;
    ucontext_t *uc = vctx;
    greg_t *g = uc->uc_mcontext.gregs;
    long a[6] = {g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9]};
    g[REG_RAX] = handle(info->si_syscall, a);
    errno = saved_errno;
}

/* ---- the filter ---- */

#define MAX_FILTER 512
#define ARG_LO(n) (offsetof(struct seccomp_data, args) + 8 * (n))

struct filter {
    struct sock_filter ins[MAX_FILTER];
    int n;
};

static void emit(struct filter *f, struct sock_filter ins) {
    if (f->n < MAX_FILTER) f->ins[f->n++] = ins;
}

static void trap_if_nr(struct filter *f, int nr) {
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
}

/* nr == syscall and args[arg] is a snapshot fd -> trap; other calls of nr -> allow */
static void trap_if_fd_arg(struct filter *f, int nr, int arg) {
    struct fs_snapshot *s = SNAP;
    int block = 1 + 2 * s->fd_count + 1 + 1; /* load, (jeq, ret) per fd, ret allow, reload */
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, (unsigned)block));
    emit(f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg)));
    for (int i = 0; i < s->fd_count; i++) {
        emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)s->fds[i].fd, 0, 1));
        emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
    }
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    emit(f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
}

int fs_syscall_watch_install(int with_kernel_writes, char *err, size_t errlen) {
    static struct filter f; /* only read while installing */
    f.n = 0;
    SNAP->watch_fds = 1;
    uintptr_t allowed_ip = (uintptr_t)fs_raw_syscall_insn + 2; /* the address after `syscall` */

    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)allowed_ip, 0, 3));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(allowed_ip >> 32), 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    /* clone3 hides its flags from the filter: refuse it, and libc falls back to clone() */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
    for (size_t i = 0; i < sizeof always_trapped / sizeof always_trapped[0]; i++) trap_if_nr(&f, always_trapped[i]);
    if (with_kernel_writes)
        for (size_t i = 0; i < sizeof kernel_writers / sizeof kernel_writers[0]; i++) trap_if_nr(&f, kernel_writers[i]);
    for (size_t i = 0; i < sizeof fd_creators / sizeof fd_creators[0]; i++) trap_if_nr(&f, fd_creators[i]);
    trap_if_nr(&f, SYS_dup2);
    trap_if_nr(&f, SYS_dup3);
    /* fcntl(F_DUPFD / F_DUPFD_CLOEXEC) creates fds too */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fcntl, 0, 5));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_DUPFD, 1, 0));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_DUPFD_CLOEXEC, 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    trap_if_fd_arg(&f, SYS_close, 0);
    /* clone() of a thread (CLONE_THREAD); plain fork()s stay allowed. Code that blocks
     * SIGSYS around clone (libc's own helpers) dies of SIGSYS here: see pthread_create. */
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    if (f.n >= MAX_FILTER) {
        snprintf(err, errlen, "syscall filter too long (%d fds open at the snapshot?)", SNAP->fd_count);
        return -1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sigsys_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSYS, &sa, NULL);
    fs_raw_syscall(SYS_rt_sigaction, SIGSYS, 0, (long)&SNAP->handlers[SIGSYS], 8, 0, 0);

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
