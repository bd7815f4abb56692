/* init_abort.c - test-only: abort()s during its initialisation, before FORKSERVER_INIT(),
 * so the fork server never starts. The orchestrator must say so in one error line.
 *
 * The abort is behind a volatile flag: an unconditional abort() would let the compiler
 * drop everything after it, FORKSERVER_INIT() (and its deferred-start marker) included.
 * Input: anything (never read). */
#include "forkserver.h"

#include <stdlib.h>

static volatile int crash_in_init = 1;

int main(void)
{
    if (crash_in_init)
        abort();
    FORKSERVER_INIT();
    return 0;
}
