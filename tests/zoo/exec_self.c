/* exec_self.c - the input's own process execs a shell: input 'A' calls execl("/bin/sh",
 * "sh", "-c", "exit 6", NULL) without forking, so the input ends with the shell's exit
 * status 6 (if execl fails: 98); any other first byte only observes. Every input first
 * observes: bit 1, this process has a child; bit 2, the signal mask is not empty. An
 * observing input exits with those bits; 'A' exits 200 + the bits instead of exec'ing
 * when any is set. Fork mode: 'A' -> 6, anything else -> 0. A leak looks like the shell
 * dying of what the runner left in it (a seccomp filter: SIGSYS), the exec taking the
 * runner's protocol state with it (an error or a hang instead of exit 6), or the input
 * after it not being run by a pristine process.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
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
    if (leak) return 200 + leak;
    execl("/bin/sh", "sh", "-c", "exit 6", (char *)NULL);
    return 98;
}
