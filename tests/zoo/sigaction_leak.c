/* sigaction_leak.c - an input ignores SIGINT. Init sets SIGINT to SIG_DFL; input 'A'
 * calls signal(SIGINT, SIG_IGN) and returns 10; any other first byte only observes.
 * Every input first observes: bit 1, sigaction(SIGINT, NULL, &old) is not SIG_DFL. An
 * observing input exits with that bit; 'A' exits 200 + the bit instead of 10 when it is
 * set. Fork mode: 'A' -> 10, anything else -> 0. A leak looks like a later input that
 * starts with SIGINT ignored.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
#include <unistd.h>

int main(void) {
    signal(SIGINT, SIG_DFL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    struct sigaction old;
    int leak = sigaction(SIGINT, NULL, &old) != 0 || old.sa_handler != SIG_DFL;
    if (n < 1 || in[0] != 'A') return leak;
    signal(SIGINT, SIG_IGN);
    return leak ? 200 + leak : 10;
}
