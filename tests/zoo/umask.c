/* umask.c - an input changes the file mode creation mask. Init sets umask(022); input
 * 'A' sets umask(077) and returns 10; any other first byte only observes. Every input
 * first observes: bit 1, the mask (read with umask() and put back at once) is not 022;
 * bit 2, the "Umask:" line of /proc/self/status does not say 0022. An observing input
 * exits with those bits; 'A' exits 200 + the bits instead of 10 when any is set. Fork
 * mode: 'A' -> 10, anything else -> 0. A leak looks like a later input whose files
 * would be created with mode 0600 instead of 0644.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int status_umask_is_0022(void) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strstr(buf, "Umask:\t0022\n") != NULL;
}

static int observe(void) {
    int leak = 0;
    mode_t m = umask(022);
    umask(m);
    if (m != 022) leak |= 1;
    if (!status_umask_is_0022()) leak |= 2;
    return leak;
}

int main(void) {
    umask(022);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || in[0] != 'A') return leak;
    umask(077);
    return leak ? 200 + leak : 10;
}
