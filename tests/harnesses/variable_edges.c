/* variable_edges.c - one branch follows the clock, not the input: its edges vary
 * between identical runs, as a fuzzer's calibration must notice. */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <time.h>
#include <unistd.h>

static volatile int sink;

/* Separate functions, so that the compiler cannot turn the branch into a select. */
__attribute__((noinline)) static void odd(void) { sink = 1; }
__attribute__((noinline)) static void even(void) { sink = 2; }

int main(void)
{
    unsigned char buf[64];
    ssize_t n = read(0, buf, sizeof buf);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if ((ts.tv_nsec >> 10) & 1)
        odd();
    else
        even();
    if (n > 0 && buf[0] == 'A')
        sink = 3;
    return 0;
}
