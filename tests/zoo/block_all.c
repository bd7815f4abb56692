/* block_all.c - an input blocks every signal, then goes on with system calls the
 * runtime may need to see: input 'A' calls sigfillset() + sigprocmask(SIG_BLOCK), opens
 * and closes /dev/null, malloc()s and frees 1 MiB (a large malloc is an mmap and a
 * munmap), and returns 10 (11 if the open fails, 12 if the malloc fails); any other
 * first byte only observes. Every input first observes: bit 1, the signal mask
 * (sigprocmask(SIG_BLOCK, NULL, &cur)) is not empty. An observing input exits with that
 * bit; 'A' exits 200 + the bit instead of its result when it is set. Fork mode: 'A' ->
 * 10, anything else -> 0. A leak looks like the input dying of SIGSYS or SIGSEGV (a
 * runtime handler it had blocked), or a later input that starts with every signal
 * blocked.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    int leak = sigisemptyset(&cur) ? 0 : 1;
    if (n < 1 || in[0] != 'A') return leak;

    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    int r = 10;
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) r = 11;
    else close(fd);
    volatile char *p = malloc(1 << 20);
    if (!p) r = 12;
    else {
        p[0] = 1;
        p[(1 << 20) - 1] = 2;
        free((void *)p);
    }
    return leak ? 200 + leak : r;
}
