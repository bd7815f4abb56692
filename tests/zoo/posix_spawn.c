/* posix_spawn.c - an input starts sh -c "exit 4" with posix_spawn() (glibc: a
 * clone(CLONE_VM | CLONE_VFORK) child that shares the parent's memory until it execs)
 * and waits for it. Input 'A' returns 100 + the child's exit status (104), or 60 + the
 * signal that killed it, 90 if posix_spawn fails, 99 if waitpid fails; any other first
 * byte only observes. Every input first observes (zoo_child.h): bit 1, this process has a
 * child; bit 2, the signal mask is not empty; bit 4, SIGCHLD is not at SIG_DFL. An observing input exits with those bits; 'A' exits
 * 200 + the bits instead of its result when any is set. Fork mode: 'A' -> 104, anything
 * else -> 0. A leak looks like the spawned shell dying of what the runner left in it
 * (SIGSYS: 91), the vfork child's writes to the shared memory surviving the restore, or
 * a later input that still sees a child.
 */
#define _GNU_SOURCE
#include "zoo_child.h"

#include <spawn.h>

extern char **environ;

int main(void) {
    int leak;
    if (!zoo_child_start(&leak)) return leak;
    char *argv[] = {"sh", "-c", "exit 4", NULL};
    pid_t c;
    if (posix_spawn(&c, "/bin/sh", NULL, NULL, argv, environ) != 0) return zoo_child_exit(90, leak);
    return zoo_child_result(c, leak);
}
