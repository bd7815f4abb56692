/* init_counter.c - test-only: shows where the fork server starts.
 *
 * Init (before FORKSERVER_INIT): appends one byte 'I' to the file named by the
 * environment variable INIT_LOG (when set). If the server starts at FORKSERVER_INIT(),
 * as forkserver.h promises, init runs once per server however many inputs run; if it
 * starts at main's entry instead, every input appends another byte.
 *
 * Each run: appends nothing; exits with the input's first byte minus '0' when it is a
 * digit, else 0. Input: argv[1], or stdin when no argument is given. */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *log = getenv("INIT_LOG");
    if (log && *log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            if (write(fd, "I", 1) != 1)
                _exit(3);
            close(fd);
        }
    }

    FORKSERVER_INIT();

    int fd = argc >= 2 ? open(argv[1], O_RDONLY) : 0;
    unsigned char c = 0;
    if (fd < 0 || read(fd, &c, 1) != 1)
        c = 0;
    return c >= '0' && c <= '9' ? c - '0' : 0;
}
