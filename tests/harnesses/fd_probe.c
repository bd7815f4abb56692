/* fd_probe.c - test-only: which descriptors the target was given.
 *
 * The input is a decimal descriptor number: abort() when that descriptor is open in
 * the target, exit 0 when it is not. A fuzzer's target must get its stdio and the
 * fork-server pipes, and nothing else of the process that started it.
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    FORKSERVER_INIT();
    char buf[16] = {0};
    int fd = argc > 1 ? open(argv[1], O_RDONLY) : 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (fd > 0)
        close(fd);
    if (n <= 0)
        return 0;
    if (fcntl(atoi(buf), F_GETFD) != -1)
        abort();
    return 0;
}
