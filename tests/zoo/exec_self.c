/* exec_self.c - the input's own process execs a shell: input 'A' calls execl("/bin/sh",
 * "sh", "-c", "exit 6", NULL) without forking, so the input ends with the shell's exit
 * status 6 (if execl fails: 98); any other first byte only observes. Every input first
 * observes (zoo_child.h): bit 1, this process has a child; bit 2, the signal mask is
 * not empty; bit 4, SIGCHLD is not at SIG_DFL. An
 * observing input exits with those bits; 'A' exits 200 + the bits instead of exec'ing
 * when any is set. Fork mode: 'A' -> 6, anything else -> 0. A leak looks like the shell
 * dying of what the runner left in it (a seccomp filter: SIGSYS), the exec taking the
 * runner's protocol state with it (an error or a hang instead of exit 6), or the input
 * after it not being run by a pristine process.
 */
#define _GNU_SOURCE
#include "zoo_child.h"

int main(void) {
    int leak;
    if (!zoo_child_start(&leak)) return leak;
    if (leak) return 200 + leak;
    execl("/bin/sh", "sh", "-c", "exit 6", (char *)NULL);
    return 98;
}
