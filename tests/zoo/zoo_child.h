/* zoo_child.h - shared by the zoo harnesses whose 'A' input forks a child and waits for
 * it. Before acting, an input observes what an earlier input could have left: bit 1,
 * this process has a child (live or zombie); bit 2, the signal mask is not empty; bit
 * 4, SIGCHLD is not at SIG_DFL. */
#ifndef ZOO_CHILD_H
#define ZOO_CHILD_H

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkserver.h"

static int zoo_child_observe(void) {
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

/* Pristine signal state, the snapshot point, then one input: returns 1 for 'A'. */
static int zoo_child_start(int *leak) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    FORKSERVER_INIT();
    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    *leak = zoo_child_observe();
    return n >= 1 && in[0] == 'A';
}

/* Waits for child c: 100 + its exit status, 60 + the signal that killed it, 99 when the
 * wait fails; 200 + the leak bits instead when the input saw a leak. */
static int zoo_child_result(pid_t c, int leak) {
    int st = 0;
    if (c < 0 || waitpid(c, &st, 0) != c) return leak ? 200 + leak : 99;
    int r = WIFEXITED(st) ? 100 + WEXITSTATUS(st) : 60 + WTERMSIG(st);
    return leak ? 200 + leak : r;
}

#endif
