/* itimer.c - an input arms an interval timer. Init disarms ITIMER_REAL; input 'A' arms
 * it as a 10 s one-shot (setitimer; it never fires within an input) and returns 10 (11
 * if setitimer fails); any other first byte only observes. Every input first observes:
 * bit 1, getitimer(ITIMER_REAL) shows the timer armed. An observing input exits with
 * that bit; 'A' exits 200 + the bit instead of its result when it is set. Fork mode:
 * 'A' -> 10, anything else -> 0. A leak looks like a later input that finds the timer
 * running (and, 10 s on, a SIGALRM that kills the runner).
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <sys/time.h>
#include <unistd.h>

int main(void) {
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    struct itimerval cur;
    int leak = getitimer(ITIMER_REAL, &cur) != 0 || cur.it_value.tv_sec || cur.it_value.tv_usec;
    if (n < 1 || in[0] != 'A') return leak;
    struct itimerval ten = {{0, 0}, {10, 0}};
    int r = setitimer(ITIMER_REAL, &ten, NULL) == 0 ? 10 : 11;
    return leak ? 200 + leak : r;
}
