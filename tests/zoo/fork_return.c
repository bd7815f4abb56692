/* fork_return.c - an input forks; the child returns 9 from main, so that libc calls
 * exit(9) for it; the parent waits. Input 'A' forks and returns 100 + the child's exit
 * status (109), or 60 + the signal that killed the child, or 99 if waitpid fails; any
 * other first byte only observes. Every input first observes what an earlier input
 * could have left: bit 1, this process has a child (live or zombie); bit 2, the signal
 * mask is not empty; bit 4, SIGCHLD is not at SIG_DFL. An observing input exits with
 * those bits; 'A' exits 200 + the bits instead of its result when any is set. Fork
 * mode: 'A' -> 109, anything else -> 0. A leak looks like the child's return from main
 * being taken for the end of the parent's input (the child reports 9, or goes on to run
 * inputs itself), a lost wait status, or a later input that still sees a child.
 */
#define _GNU_SOURCE
#include "zoo_child.h"


int main(void) {
    int leak;
    if (!zoo_child_start(&leak)) return leak;
    pid_t c = fork();
    if (c == 0) return 9;
    return zoo_child_result(c, leak);
}
