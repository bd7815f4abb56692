/* system_true.c - an input runs system("/bin/true"). Input 'A' returns 20 + the exit
 * status system() reports (20), or 90 if system() fails; any other first byte only
 * observes. Every input first observes: bit 1, this process has a child; bit 2, the
 * signal mask is not empty (system() blocks SIGCHLD while it waits); bit 4, SIGINT or
 * SIGQUIT is not at SIG_DFL (system() ignores both while it waits). An observing input
 * exits with those bits; 'A' exits 200 + the bits instead of its result when any is
 * set. Fork mode: 'A' -> 20, anything else -> 0. A leak looks like the shell failing
 * inside the runner (a status other than 0, or system() failing), or a later input that
 * sees SIGCHLD still blocked or SIGINT/SIGQUIT still ignored.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int observe(void) {
    int leak = 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0) leak |= 1;
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    if (!sigisemptyset(&cur)) leak |= 2;
    struct sigaction a, b;
    if (sigaction(SIGINT, NULL, &a) || sigaction(SIGQUIT, NULL, &b) || a.sa_handler != SIG_DFL ||
        b.sa_handler != SIG_DFL)
        leak |= 4;
    return leak;
}

int main(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || in[0] != 'A') return leak;

    int st = system("/bin/true");
    int r = st == -1 ? 90 : WIFEXITED(st) ? 20 + WEXITSTATUS(st) : 60 + WTERMSIG(st);
    return leak ? 200 + leak : r;
}
