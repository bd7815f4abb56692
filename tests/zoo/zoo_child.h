/* zoo_child.h - shared by the zoo harnesses whose 'A' input starts a process (fork,
 * exec, system, posix_spawn, popen). Before acting, an input observes what an earlier
 * input could have left: bit 1, this process has a child (live or zombie); bit 2, the
 * signal mask is not empty; bit 4, SIGCHLD is not at SIG_DFL; bit 8 and up, what the
 * harness's own check (zoo_child_start's extra) sees. */
#ifndef ZOO_CHILD_H
#define ZOO_CHILD_H

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkserver.h"

static inline int zoo_child_observe(void) {
    int leak = 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0) leak |= 1;
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    if (!sigisemptyset(&cur)) leak |= 2;
    struct sigaction sa;
    if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) leak |= 4;
    return leak;
}

/* Pristine signal state, the snapshot point, then one input: returns 1 for 'A'.
 * extra, when given, adds the harness's own observations (bits 8 and up). */
static inline int zoo_child_start_with(int *leak, int (*extra)(void)) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    FORKSERVER_INIT();
    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    *leak = zoo_child_observe() | (extra ? extra() : 0);
    return n >= 1 && in[0] == 'A';
}

static inline int zoo_child_start(int *leak) { return zoo_child_start_with(leak, NULL); }

/* An 'A' input's exit code: its result r, or 200 + the leak bits when it saw a leak. */
static inline int zoo_child_exit(int r, int leak) { return leak ? 200 + leak : r; }

/* Waits for child c: 100 + its exit status, 60 + the signal that killed it, 99 when the
 * wait fails; 200 + the leak bits instead when the input saw a leak. */
static inline int zoo_child_result(pid_t c, int leak) {
    int st = 0;
    if (c < 0 || waitpid(c, &st, 0) != c) return zoo_child_exit(99, leak);
    return zoo_child_exit(WIFEXITED(st) ? 100 + WEXITSTATUS(st) : 60 + WTERMSIG(st), leak);
}

#endif
