/* hang.c - hangs and slow inputs, to exercise the runtime's and the orchestrator's
 * timeouts (and, in snapshot mode, the restore after a run was killed).
 *
 * Calls FORKSERVER_INIT() at the start of main, before reading the input.
 *
 * Input (argv[1], or stdin when no argument is given; at most 1 MiB is read):
 *   "HANG..."     spins forever (a busy loop on a volatile counter, which the compiler
 *                 may not remove); only a timeout ends it
 *   "SLOW<n>..."  sleeps n milliseconds (n decimal, at most 9 digits, no digits: 0),
 *                 then exit 0
 *   anything else exit 0
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* Sleeps ms milliseconds. nanosleep rather than usleep: usleep is obsolete and may
 * reject a second or more. */
static void sleep_ms(unsigned long ms)
{
    struct timespec left = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    FORKSERVER_INIT();

    size_t len = read_input(argc, argv);

    if (len >= 4 && memcmp(input, "HANG", 4) == 0) {
        volatile unsigned long spin = 0;
        for (;;)
            spin++;
    }
    if (len >= 4 && memcmp(input, "SLOW", 4) == 0) {
        unsigned long ms = 0;
        for (size_t i = 4; i < len && i < 4 + 9 && input[i] >= '0' && input[i] <= '9'; i++)
            ms = ms * 10 + (unsigned long)(input[i] - '0');
        sleep_ms(ms);
    }
    return 0;
}
