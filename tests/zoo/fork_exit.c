/* fork_exit.c - an input forks; the child writes a line to stdout and ends with
 * exit(9), which flushes stdio and runs the exit handlers; the parent waits. Input 'A'
 * forks and returns 100 + the child's exit status (109), or 60 + the signal that killed
 * the child, or 99 if waitpid fails; any other first byte only observes. Every input
 * first observes what an earlier input could have left: bit 1, this process has a child
 * (live or zombie); bit 2, the signal mask is not empty; bit 4, SIGCHLD is not at
 * SIG_DFL. An observing input exits with those bits; 'A' exits 200 + the bits instead
 * of its result when any is set. Fork mode: 'A' -> 109, anything else -> 0. A leak
 * looks like the child's exit() (its stdio flush, its exit handlers) being taken for
 * the end of the parent's input (the child reports 9, or goes on to run inputs itself),
 * a lost wait status, or a later input that still sees a child.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
#include <stdio.h>
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
    struct sigaction sa;
    if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) leak |= 4;
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

    int st = 0;
    pid_t c = fork();
    if (c == 0) {
        printf("child %d\n", 9);
        exit(9);
    }
    if (c < 0 || waitpid(c, &st, 0) != c) return leak ? 200 + leak : 99;
    int r = WIFEXITED(st) ? 100 + WEXITSTATUS(st) : 60 + WTERMSIG(st);
    return leak ? 200 + leak : r;
}
