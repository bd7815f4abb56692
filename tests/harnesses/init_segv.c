/* init_segv.c - test-only: writes a line to stderr, then dies of SIGSEGV during its
 * initialisation, before FORKSERVER_INIT(), so the fork server never starts.
 *
 * The crash is behind a volatile flag so that the compiler keeps FORKSERVER_INIT()
 * (and its deferred-start marker) after it. Input: anything (never read). */
#include "forkserver.h"

#include <stdio.h>

static volatile int crash_in_init = 1;

int main(void)
{
    fprintf(stderr, "init_segv: crashing during init\n");
    if (crash_in_init) {
        volatile int *volatile p = NULL;
        *p = 1;
    }
    FORKSERVER_INIT();
    return 0;
}
