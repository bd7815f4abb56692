/* counted.c - test-only: known hit counts.
 *
 * Calls FORKSERVER_INIT() first thing in main, then reads the input (argv[1], or stdin
 * when no argument is given; at most 63 bytes are looked at): a decimal n (at most 9
 * digits; anything else counts as 0). Calls counted_tick() exactly n times, exit 0.
 * counted_tick() is one basic block: its single coverage guard is hit exactly n times,
 * so the map byte of that guard must hold n's AFL hit count (never 0 for n > 0).
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <unistd.h>

static volatile unsigned long sink;

__attribute__((noinline)) void counted_tick(void) { sink++; }

static unsigned long number(const char *s)
{
    unsigned long n = 0;
    for (int i = 0; i < 9 && s[i] >= '0' && s[i] <= '9'; i++)
        n = n * 10 + (unsigned long)(s[i] - '0');
    return n;
}

int main(int argc, char **argv)
{
    FORKSERVER_INIT();

    char buf[64] = {0};
    int fd = argc >= 2 ? open(argv[1], O_RDONLY) : 0;
    if (fd < 0)
        return 2;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    if (fd != 0)
        close(fd);
    if (len <= 0)
        return 0;
    unsigned long n = number(buf);
    for (unsigned long i = 0; i < n; i++)
        counted_tick();
    return 0;
}
