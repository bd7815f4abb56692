/* exec_child_sh.c - an input forks a child that execs sh -c "exit 5"; the parent waits.
 * Input 'A' returns 100 + the child's exit status (105), or 60 + the signal that killed
 * the child, or 99 if waitpid fails (a child whose exec fails exits 127: 227); any
 * other first byte only observes. Every input first observes: bit 1, this process has a
 * child; bit 2, the signal mask is not empty. An observing input exits with those bits;
 * 'A' exits 200 + the bits instead of its result when any is set. Fork mode: 'A' ->
 * 105, anything else -> 0. A leak looks like the exec'd program dying of what the
 * runner left in it (a seccomp filter that traps its system calls: SIGSYS, 60 + 31 =
 * 91), or a later input that still sees a child.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
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
        execl("/bin/sh", "sh", "-c", "exit 5", (char *)NULL);
        syscall(SYS_exit_group, 127);
    }
    if (c < 0 || waitpid(c, &st, 0) != c) return leak ? 200 + leak : 99;
    int r = WIFEXITED(st) ? 100 + WEXITSTATUS(st) : 60 + WTERMSIG(st);
    return leak ? 200 + leak : r;
}
