/* system_true.c - an input runs system("/bin/true"). Input 'A' returns 20 + the exit
 * status system() reports (20), or 90 if system() fails; any other first byte only
 * observes. Every input first observes (zoo_child.h): bit 1, this process has a child; bit 2,
 * the signal mask is not empty (system() blocks SIGCHLD while it waits); bit 4, SIGCHLD
 * is not at SIG_DFL; bit 8, SIGINT or SIGQUIT is not at SIG_DFL (system() ignores both
 * while it waits). An observing input
 * exits with those bits; 'A' exits 200 + the bits instead of its result when any is
 * set. Fork mode: 'A' -> 20, anything else -> 0. A leak looks like the shell failing
 * inside the runner (a status other than 0, or system() failing), or a later input that
 * sees SIGCHLD still blocked or SIGINT/SIGQUIT still ignored.
 */
#define _GNU_SOURCE
#include "zoo_child.h"

#include <stdlib.h>

static int interrupts_not_default(void) {
    struct sigaction a, b;
    if (sigaction(SIGINT, NULL, &a) || sigaction(SIGQUIT, NULL, &b) || a.sa_handler != SIG_DFL ||
        b.sa_handler != SIG_DFL)
        return 8;
    return 0;
}

int main(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    int leak;
    if (!zoo_child_start_with(&leak, interrupts_not_default)) return leak;
    int st = system("/bin/true");
    return zoo_child_exit(st == -1 ? 90 : WIFEXITED(st) ? 20 + WEXITSTATUS(st) : 60 + WTERMSIG(st), leak);
}
