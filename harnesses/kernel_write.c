/* kernel_write.c - the kernel, not the program, writes into snapshot memory.
 *
 * Init (before FORKSERVER_INIT): a 64 MiB buffer (large enough that pagemap-scan keeps
 * it write-protected and traps the first write to each page) filled with a pattern, plus a
 * pipe. Each run pushes the input through the pipe and read()s it back into the buffer
 * at an offset chosen by the input's first bytes, then checks that the bytes arrived and
 * that the rest of the buffer still holds the pattern where this run did not write.
 *   exit 0   the read landed and the buffer was pristine before it
 *   exit 3   read() failed (EFAULT would mean a write-protected page was not made
 *            writable before the kernel wrote to it)
 *   exit 42  the buffer was not back at its pattern (a restore missed a kernel write)
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE (64u << 20)
#define PAGE 4096u

static unsigned char *buf;
static int pipe_fds[2];
static unsigned char input[PAGE];

static unsigned char pattern(size_t i) { return (unsigned char)((i / PAGE) * 7 + 1); }

static size_t read_input(int argc, char **argv) {
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : stdin;
    if (!f) return 0;
    size_t n = fread(input, 1, sizeof input, f);
    if (f != stdin) fclose(f);
    return n;
}

int main(int argc, char **argv) {
    buf = malloc(BUF_SIZE);
    if (!buf || pipe(pipe_fds)) return 2;
    for (size_t i = 0; i < BUF_SIZE; i += PAGE) memset(buf + i, pattern(i), PAGE);

    FORKSERVER_INIT();

    size_t len = read_input(argc, argv);
    uint32_t seed = 0;
    for (size_t i = 0; i < len && i < 4; i++) seed = seed * 131 + input[i];
    size_t offset = (seed % (BUF_SIZE / PAGE - 2)) * PAGE + 100;
    /* the pages this run will overwrite must still hold the pattern */
    for (size_t i = offset; i < offset + len; i++)
        if (buf[i] != pattern(i)) return 42;
    if (len && write(pipe_fds[1], input, len) != (ssize_t)len) return 2;
    if (len && read(pipe_fds[0], buf + offset, len) != (ssize_t)len) return 3;
    if (len && memcmp(buf + offset, input, len) != 0) return 3;
    return 0;
}
