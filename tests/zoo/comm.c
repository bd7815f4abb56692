/* comm.c - an input renames the process. Init sets the name to "zoo-comm" with
 * prctl(PR_SET_NAME); input 'A' sets it to "zoo-renamed" and returns 10; any other
 * first byte only observes. Every input first observes: bit 1, prctl(PR_GET_NAME) is
 * not "zoo-comm"; bit 2, /proc/self/comm is not "zoo-comm\n". An observing input exits
 * with those bits; 'A' exits 200 + the bits instead of 10 when any is set. Fork mode:
 * 'A' -> 10, anything else -> 0. A leak looks like a later input that runs under the
 * new name.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int observe(void) {
    int leak = 0;
    char name[17] = {0};
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0 || strcmp(name, "zoo-comm") != 0) leak |= 1;
    char buf[64];
    int fd = open("/proc/self/comm", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    if (fd >= 0) close(fd);
    if (got != 9 || memcmp(buf, "zoo-comm\n", 9) != 0) leak |= 2;
    return leak;
}

int main(void) {
    if (prctl(PR_SET_NAME, "zoo-comm", 0, 0, 0) != 0) return 2;
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || in[0] != 'A') return leak;
    prctl(PR_SET_NAME, "zoo-renamed", 0, 0, 0);
    return leak ? 200 + leak : 10;
}
