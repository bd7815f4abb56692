/* The fault handler of the backends that keep memory read-only (mprotect: SIGSEGV) or
 * write-protected with traps (pagemap-scan's large regions: SIGBUS from userfaultfd),
 * and of trapped holes (sparse.c): a write fault on such memory is theirs to handle;
 * any other fault goes to the program's own handler, or kills it as it would have. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "track.h"

static int ours(struct fs_snapshot *s, int sig, const siginfo_t *info) {
    uintptr_t addr = (uintptr_t)info->si_addr;
    if (sig == SIGSEGV && info->si_code == SEGV_ACCERR)
        return (s->tracker->handle_fault && s->tracker->handle_fault(s, addr)) || fs_sparse_handle_fault(addr);
    /* userfaultfd's SIGBUS: in the runner, or in a task that shares its memory (and so its
     * traps); a forked child has none (they are not inherited) */
    if (sig == SIGBUS && info->si_code == BUS_ADRERR && fs_shares_runner_memory())
        return s->tracker->handle_fault && s->tracker->handle_fault(s, addr);
    return 0;
}

static void fault_handler(int sig, siginfo_t *info, void *uctx) {
    struct fs_snapshot *s = &fs_st->snap;
    if (ours(s, sig, info)) return;
    /* a real fault: the program's own handler, if it has one */
    struct fs_kernel_sigaction *h = sig == SIGBUS ? &s->bus_view : &s->segv_view;
    if ((uintptr_t)h->handler > (uintptr_t)SIG_IGN) {
        void *fn = h->handler;
        int siginfo = (h->flags & SA_SIGINFO) != 0;
        if (h->flags & SA_RESETHAND) memset(h, 0, sizeof *h);
        if (siginfo) ((void (*)(int, siginfo_t *, void *))fn)(sig, info, uctx);
        else ((void (*)(int))fn)(sig);
        return;
    }
    /* a real crash: die of it, as the program would have */
    struct fs_kernel_sigaction dfl = {0};
    fs_raw_syscall(SYS_rt_sigaction, sig, (long)&dfl, 0, FS_SIGSET_SIZE, 0, 0);
}

void fs_write_faults_install(struct fs_snapshot *s) {
    /* the program keeps seeing, and getting real faults through, the handlers it had */
    fs_snapshot_take_over_signal(SIGSEGV, fault_handler, &s->segv_view, &s->segv_view_snap);
    fs_snapshot_take_over_signal(SIGBUS, fault_handler, &s->bus_view, &s->bus_view_snap);
    s->owns_faults = 1;
}
