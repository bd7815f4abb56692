/* posix_spawn.c - an input starts sh -c "exit 4" with posix_spawn() (glibc: a
 * clone(CLONE_VM | CLONE_VFORK) child that shares the parent's memory until it execs)
 * and waits for it. Input 'A' returns 100 + the child's exit status (104), or 60 + the
 * signal that killed it, 90 if posix_spawn fails, 99 if waitpid fails; any other first
 * byte only observes. Every input first observes: bit 1, this process has a child; bit
 * 2, the signal mask is not empty. An observing input exits with those bits; 'A' exits
 * 200 + the bits instead of its result when any is set. Fork mode: 'A' -> 104, anything
 * else -> 0. A leak looks like the spawned shell dying of what the runner left in it
 * (SIGSYS: 91), the vfork child's writes to the shared memory surviving the restore, or
 * a later input that still sees a child.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int observe(void) {
    int leak = 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0) leak |= 1;
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    if (!sigisemptyset(&cur)) leak |= 2;
    return leak;
}

int main(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || in[0] != 'A') return leak;

    char *argv[] = {"sh", "-c", "exit 4", NULL};
    pid_t c;
    int st = 0, r;
    if (posix_spawn(&c, "/bin/sh", NULL, NULL, argv, environ) != 0) r = 90;
    else if (waitpid(c, &st, 0) != c) r = 99;
    else r = WIFEXITED(st) ? 100 + WEXITSTATUS(st) : 60 + WTERMSIG(st);
    return leak ? 200 + leak : r;
}
