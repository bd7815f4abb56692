/* popen.c - an input runs popen("echo hi", "r"), reads the shell's output and closes
 * the stream. Input 'A' returns 30 + the number of bytes read (33 for "hi\n"), plus 40
 * if the bytes are not "hi\n", plus 80 if pclose() reports anything but exit status 0;
 * 90 if popen fails; any other first byte only observes. Every input first observes
 * (zoo_child.h): bit 1, this process has a child; bit 2, the signal mask is not empty;
 * bit 4, SIGCHLD is not at SIG_DFL; bit 8, the lowest free fd is not the one it was at
 * init (a pipe end left open). An observing input exits with those bits; 'A' exits
 * 200 + the bits instead of its result when any is set. Fork mode: 'A' -> 33, anything else -> 0. A leak looks like the shell dying
 * of what the runner left in it (no output, a bad pclose status), or a later input that
 * still sees the child or the pipe.
 */
#define _GNU_SOURCE
#include "zoo_child.h"

#include <fcntl.h>
#include <stdio.h>

static int init_lowest_fd;

static int lowest_free_fd(void) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) close(fd);
    return fd;
}

static int fd_left_open(void) { return lowest_free_fd() != init_lowest_fd ? 8 : 0; }

int main(void) {
    init_lowest_fd = lowest_free_fd();
    int leak;
    if (!zoo_child_start_with(&leak, fd_left_open)) return leak;
    FILE *p = popen("echo hi", "r");
    if (!p) return zoo_child_exit(90, leak);
    char buf[64];
    size_t got = fread(buf, 1, sizeof buf, p);
    int st = pclose(p);
    int r = 30 + (int)got;
    if (got != 3 || memcmp(buf, "hi\n", 3) != 0) r += 40;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) r += 80;
    if (r > 199) r = 199;
    return zoo_child_exit(r, leak);
}
