/* maze.c - a magic-byte maze for coverage-guided progress.
 *
 * Every correct byte of a magic string unlocks a new nested branch, so a fuzzer that
 * keeps inputs with new coverage can solve the maze one byte at a time, while a blind
 * one needs to guess whole strings. Each level is a separate `len > i && buf[i] == c`
 * test followed by a volatile store, so the compiler cannot fold a chain into a single
 * memcmp or wide compare.
 *
 * This harness deliberately does NOT call FORKSERVER_INIT(): it exercises the path
 * where the fork server starts at main's entry.
 *
 * Input (argv[1], or stdin when no argument is given; at most 1 MiB is read):
 *   "FUZZ..."       abort() (SIGABRT) - the planted crash
 *   "FUN..."        a harmless side passage next to the crash, exit 0
 *   "MAZE!..."      the deep passage: "MAZE!" opens it, then
 *     "MAZE!LEFT"   a dead end, exit 0
 *     "MAZE!EXIT"   the far exit of the maze (deepest level), exit 0
 *   anything else   exit 0
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_INPUT (1u << 20)

static unsigned char input[MAX_INPUT];

/* Deepest level reached; volatile so every level keeps its own store and edge. */
static volatile unsigned depth;

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

static void walk(const unsigned char *buf, size_t len)
{
    if (len > 0 && buf[0] == 'F') {
        depth = 1;
        if (len > 1 && buf[1] == 'U') {
            depth = 2;
            if (len > 2 && buf[2] == 'Z') {
                depth = 3;
                if (len > 3 && buf[3] == 'Z') {
                    depth = 4;
                    abort();
                }
            } else if (len > 2 && buf[2] == 'N') {
                depth = 3;
            }
        }
    }

    if (len > 0 && buf[0] == 'M') {
        depth = 1;
        if (len > 1 && buf[1] == 'A') {
            depth = 2;
            if (len > 2 && buf[2] == 'Z') {
                depth = 3;
                if (len > 3 && buf[3] == 'E') {
                    depth = 4;
                    if (len > 4 && buf[4] == '!') {
                        depth = 5;
                        if (len > 5 && buf[5] == 'L') {
                            depth = 6;
                            if (len > 6 && buf[6] == 'E') {
                                depth = 7;
                                if (len > 7 && buf[7] == 'F') {
                                    depth = 8;
                                    if (len > 8 && buf[8] == 'T')
                                        depth = 9; /* dead end */
                                }
                            }
                        } else if (len > 5 && buf[5] == 'E') {
                            depth = 6;
                            if (len > 6 && buf[6] == 'X') {
                                depth = 7;
                                if (len > 7 && buf[7] == 'I') {
                                    depth = 8;
                                    if (len > 8 && buf[8] == 'T')
                                        depth = 100; /* the far exit */
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

int main(int argc, char **argv)
{
    size_t len = read_input(argc, argv);
    walk(input, len);
    return 0;
}
