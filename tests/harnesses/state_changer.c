/* Changes one piece of kernel-side process state per input, named by the input's first
 * byte: C cwd, U umask, R an rlimit, N the process name, P a prctl setting, S a signal
 * handler, M the signal mask, T an interval timer, A the signal stack. Any other input
 * changes nothing. Every input first reports, in its exit code, which pieces differ
 * from what they were at start-up (a bit per piece in the order above; S and A share
 * one): fork mode always
 * exits 0, and a restore that leaves a piece out shows on the next input. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "forkserver.h"

static char cwd0[512], name0[17];
static mode_t umask0;
static struct rlimit core0;
static int dumpable0;

static void on_usr1(int sig) { (void)sig; }

static int changed_pieces(void) {
    char cwd[512] = "", name[17] = "";
    int bits = 0;
    if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, cwd0)) bits |= 1;
    mode_t m = umask(0);
    umask(m);
    if (m != umask0) bits |= 2;
    struct rlimit core;
    getrlimit(RLIMIT_CORE, &core);
    if (core.rlim_cur != core0.rlim_cur) bits |= 4;
    prctl(PR_GET_NAME, name);
    if (strcmp(name, name0)) bits |= 8;
    if (prctl(PR_GET_DUMPABLE) != dumpable0) bits |= 16;
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    if (sa.sa_handler != SIG_DFL) bits |= 32;
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    if (sigismember(&mask, SIGUSR2)) bits |= 64;
    struct itimerval it;
    getitimer(ITIMER_REAL, &it);
    if (it.it_value.tv_sec || it.it_value.tv_usec) bits |= 128;
    stack_t ss;
    sigaltstack(NULL, &ss);
    if (!(ss.ss_flags & SS_DISABLE)) bits |= 32; /* signal state, as the handler above */
    return bits;
}

int main(void) {
    if (!getcwd(cwd0, sizeof cwd0)) return 2;
    umask0 = umask(022);
    umask(umask0);
    getrlimit(RLIMIT_CORE, &core0);
    prctl(PR_GET_NAME, name0);
    dumpable0 = prctl(PR_GET_DUMPABLE);
    FORKSERVER_INIT();
    char in[8] = {0};
    if (read(0, in, sizeof in - 1) < 0) return 2;
    int bits = changed_pieces();
    static char stack[1 << 16];
    switch (in[0]) {
    case 'C': if (chdir(strcmp(cwd0, "/") ? "/" : "/tmp")) return 3; break;
    case 'U': umask(077); break;
    case 'R': { struct rlimit r = core0; r.rlim_cur = r.rlim_cur ? 0 : 4096; setrlimit(RLIMIT_CORE, &r); break; }
    case 'N': prctl(PR_SET_NAME, "state-changed"); break;
    case 'P': prctl(PR_SET_DUMPABLE, !dumpable0); break;
    case 'S': signal(SIGUSR1, on_usr1); break;
    case 'M': { sigset_t s; sigemptyset(&s); sigaddset(&s, SIGUSR2); sigprocmask(SIG_BLOCK, &s, NULL); break; }
    case 'T': { struct itimerval it = {.it_value = {.tv_sec = 100}}; setitimer(ITIMER_REAL, &it, NULL); break; }
    case 'A': { stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack}; sigaltstack(&ss, NULL); break; }
    }
    return bits;
}
