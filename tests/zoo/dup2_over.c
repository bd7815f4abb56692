/* dup2_over.c - an input replaces an fd that was open at the snapshot. Init creates a
 * file with known contents in a fresh mkdtemp() directory under /tmp, opens it
 * read-only and removes the file and the directory (the fd keeps the contents; nothing
 * stays on disk). Every input first pread()s the fd at offset 0 and checks the contents
 * (bit 1: they differ or the read fails); input 'A' then opens /dev/null and dup2()s it
 * over the fd and returns 10 (11 if a call fails); other inputs return the bit. 'A'
 * exits 200 + the bit instead of its result when it is set. Fork mode: 'A' -> 10,
 * anything else -> 0. A leak looks like a later input reading nothing from the fd (it
 * is /dev/null now).
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char contents[] = "forkserver zoo: the contents of a file opened at init\n";
static int fd = -1;

static int open_known_file(void) {
    char dir[] = "/tmp/zoo-dup2-XXXXXX", path[64];
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/file", dir);
    int w = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    int ok = w >= 0 && write(w, contents, sizeof contents - 1) == (ssize_t)(sizeof contents - 1);
    if (w >= 0) close(w);
    int r = ok ? open(path, O_RDONLY) : -1;
    unlink(path);
    rmdir(dir);
    return r;
}

int main(void) {
    fd = open_known_file();
    if (fd < 0) return 2;
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    char buf[128];
    ssize_t got = pread(fd, buf, sizeof buf, 0);
    int leak = got != (ssize_t)(sizeof contents - 1) || memcmp(buf, contents, sizeof contents - 1) != 0;
    if (n < 1 || in[0] != 'A') return leak;
    int r = 11;
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0 && dup2(null_fd, fd) == fd) r = 10;
    if (null_fd >= 0) close(null_fd);
    return leak ? 200 + leak : r;
}
