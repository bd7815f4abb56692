/* crash.c - an outcome zoo: the input's prefix picks how the run ends, so the runtime
 * and the orchestrator can be checked against every kind of ending.
 *
 * Calls FORKSERVER_INIT() at the start of main, before reading the input.
 *
 * Input (argv[1], or stdin when no argument is given; at most 1 MiB is read):
 *   "SEGV..."     writes through a NULL pointer          -> SIGSEGV
 *   "ABRT..."     abort()                                -> SIGABRT
 *   "FPE..."      raise(SIGFPE)                          -> SIGFPE
 *   "EXIT<n>..."  exit(n), n decimal (no digits: 0)      -> exit status n & 0xff,
 *                 after atexit handlers and stdio flushing
 *   "_EXIT<n>..." _exit(n), n decimal (no digits: 0)     -> exit status n & 0xff,
 *                 straight to the kernel
 *   anything else                                        -> exit 0
 * At most 9 digits of n are read, so it never overflows.
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INPUT (1u << 20)

static unsigned char input[MAX_INPUT];

/* Reads the input file (or stdin) into input[]; returns its length. */
static size_t read_input(int argc, char **argv)
{
    int fd = 0;
    if (argc >= 2) {
        fd = open(argv[1], O_RDONLY);
        if (fd < 0) {
            perror(argv[1]);
            exit(2);
        }
    }
    size_t len = 0;
    while (len < MAX_INPUT) {
        ssize_t n = read(fd, input + len, MAX_INPUT - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (fd != 0)
        close(fd);
    return len;
}

static int has_prefix(const unsigned char *buf, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(buf, prefix, n) == 0;
}

/* Decimal number at buf[0..len), 0 when there are no digits. */
static int parse_number(const unsigned char *buf, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len && i < 9 && buf[i] >= '0' && buf[i] <= '9'; i++)
        n = n * 10 + (buf[i] - '0');
    return n;
}

int main(int argc, char **argv)
{
    FORKSERVER_INIT();

    size_t len = read_input(argc, argv);

    if (has_prefix(input, len, "SEGV")) {
        /* volatile both ways: the compiler can neither see that p is NULL (and emit a
         * trap, SIGILL, instead) nor drop the store as dead */
        volatile int *volatile p = NULL;
        *p = 1;
    } else if (has_prefix(input, len, "ABRT")) {
        abort();
    } else if (has_prefix(input, len, "FPE")) {
        raise(SIGFPE);
    } else if (has_prefix(input, len, "EXIT")) {
        exit(parse_number(input + 4, len - 4));
    } else if (has_prefix(input, len, "_EXIT")) {
        _exit(parse_number(input + 5, len - 5));
    }
    return 0;
}
