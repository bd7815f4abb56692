/* crash_tenth.c - crashes (SIGSEGV) on about one input in ten: those whose byte sum is a
 * multiple of ten. Havoc mutants spread their sums evenly, so a fuzzer meets a crash
 * every ~10 runs and must keep its rate through them. With CRASH_TENTH_OFF set it
 * never crashes: the same work without the crashes, for comparison. */
#include "forkserver.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static int never_crash;

int main(void)
{
    static unsigned char buf[4096];
    never_crash = getenv("CRASH_TENTH_OFF") != NULL;
    ssize_t n = read(0, buf, sizeof buf);
    unsigned sum = 0;
    for (ssize_t i = 0; i < n; i++)
        sum += buf[i];
    if (n > 0 && sum % 10 == 0 && !never_crash)
        raise(SIGSEGV);
    return 0;
}
