/* rlimit.c - an input lowers a resource limit. Init records getrlimit(RLIMIT_NOFILE);
 * input 'A' calls setrlimit(RLIMIT_NOFILE, {100, 100}) (soft and hard: only a
 * privileged process can raise the hard limit back) and returns 10 (11 if it fails);
 * any other first byte only observes. Every input first observes: bit 1, getrlimit()
 * differs from the value at init; bit 2, prlimit(0, RLIMIT_NOFILE) differs too. An
 * observing input exits with those bits; 'A' exits 200 + the bits instead of its result
 * when any is set. Fork mode: 'A' -> 10, anything else -> 0. A leak looks like a later
 * input that can open no more than 100 files.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <sys/resource.h>
#include <unistd.h>

static struct rlimit init_rl;

static int observe(void) {
    int leak = 0;
    struct rlimit rl, rl2;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != init_rl.rlim_cur || rl.rlim_max != init_rl.rlim_max)
        leak |= 1;
    if (prlimit(0, RLIMIT_NOFILE, NULL, &rl2) != 0 || rl2.rlim_cur != init_rl.rlim_cur ||
        rl2.rlim_max != init_rl.rlim_max)
        leak |= 2;
    return leak;
}

int main(void) {
    if (getrlimit(RLIMIT_NOFILE, &init_rl) != 0) return 2;
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || in[0] != 'A') return leak;
    struct rlimit low = {100, 100};
    int r = setrlimit(RLIMIT_NOFILE, &low) == 0 ? 10 : 11;
    return leak ? 200 + leak : r;
}
