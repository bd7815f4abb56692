/* Busy-waits for the number of microseconds its input names, then returns 0: inputs
 * just under and just over a short timeout make the orchestrator kill runners at every
 * point of the protocol, including before a runner has read its run command. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "forkserver.h"

static long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

int main(void) {
    FORKSERVER_INIT();
    char in[16] = {0};
    if (read(0, in, sizeof in - 1) < 0) return 2;
    long us = atol(in), t0 = now_us();
    while (now_us() - t0 < us) {
    }
    return 0;
}
