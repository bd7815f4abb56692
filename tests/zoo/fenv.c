/* fenv.c - an input changes the floating-point rounding mode. Input 'A' calls
 * fesetround(FE_UPWARD) (x87 control word and SSE MXCSR) and returns 10 (11 if it
 * fails); any other first byte only observes. Every input first observes: bit 1,
 * fegetround() is not FE_TONEAREST; bit 2, the MXCSR rounding bits are not
 * round-to-nearest; bit 4, 1.0 / 3.0 computed at run time differs from the value
 * computed at init. An observing input exits with those bits; 'A' exits 200 + the bits
 * instead of its result when any is set. Fork mode: 'A' -> 10, anything else -> 0. A
 * leak looks like a later input that rounds upwards.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fenv.h>
#include <string.h>
#include <unistd.h>
#include <xmmintrin.h>

static volatile double one = 1.0, three = 3.0;
static double init_third;

int main(void) {
    fesetround(FE_TONEAREST);
    init_third = one / three;
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = 0;
    if (fegetround() != FE_TONEAREST) leak |= 1;
    if (_mm_getcsr() & 0x6000) leak |= 2;
    double third = one / three;
    if (memcmp(&third, &init_third, sizeof third) != 0) leak |= 4;
    if (n < 1 || in[0] != 'A') return leak;
    int r = fesetround(FE_UPWARD) == 0 ? 10 : 11;
    return leak ? 200 + leak : r;
}
