/* exec_child_sh.c - an input forks a child that execs sh -c "exit 5"; the parent waits.
 * Input 'A' returns 100 + the child's exit status (105), or 60 + the signal that killed
 * the child, or 99 if waitpid fails (a child whose exec fails exits 127: 227); any
 * other first byte only observes. Every input first observes (zoo_child.h): bit 1, this
 * process has a child; bit 2, the signal mask is not empty; bit 4, SIGCHLD is not at
 * SIG_DFL. An observing input exits with those bits;
 * 'A' exits 200 + the bits instead of its result when any is set. Fork mode: 'A' ->
 * 105, anything else -> 0. A leak looks like the exec'd program dying of what the
 * runner left in it (a seccomp filter that traps its system calls: SIGSYS, 60 + 31 =
 * 91), or a later input that still sees a child.
 */
#define _GNU_SOURCE
#include "zoo_child.h"

#include <sys/syscall.h>

int main(void) {
    int leak;
    if (!zoo_child_start(&leak)) return leak;
    pid_t c = fork();
    if (c == 0) {
        execl("/bin/sh", "sh", "-c", "exit 5", (char *)NULL);
        syscall(SYS_exit_group, 127);
    }
    return zoo_child_result(c, leak);
}
