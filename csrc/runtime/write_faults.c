/* The SIGSEGV handler of the backends that keep memory read-only (mprotect, and
 * pagemap-scan's cold chunks), and of trapped holes (sparse.c): a write fault on such
 * memory is theirs to handle;
 * any other fault goes to the program's own handler, or kills it as it would have. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "track.h"

static void segv_handler(int sig, siginfo_t *info, void *uctx) {
    struct fs_snapshot *s = &fs_st->snap;
    if (info->si_code == SEGV_ACCERR) {
        uintptr_t addr = (uintptr_t)info->si_addr;
        if (s->tracker->handle_fault && s->tracker->handle_fault(s, addr)) return;
        if (fs_sparse_handle_fault(addr)) return;
    }
    /* a real fault: the program's own handler, if it has one */
    struct fs_kernel_sigaction *h = &s->segv_view;
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
    fs_raw_syscall(SYS_rt_sigaction, SIGSEGV, (long)&dfl, 0, FS_SIGSET_SIZE, 0, 0);
}

void fs_write_faults_install(struct fs_snapshot *s) {
    /* the program keeps seeing, and getting real faults through, the handler it had */
    fs_snapshot_take_over_signal(SIGSEGV, segv_handler, &s->segv_view, &s->segv_view_snap);
    s->owns_segv = 1;
}
