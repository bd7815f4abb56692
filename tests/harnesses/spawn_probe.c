/* spawn_probe.c - test-only: what the target was started with.
 *
 * The input is a decimal descriptor number, or `s` and a decimal signal number:
 *   N     abort() when descriptor N is open in the target, exit 0 when it is not;
 *   sN    abort() when signal N is ignored or blocked in the target, exit 0 when not;
 *   c     abort() when the target may dump core (RLIMIT_CORE above 0), exit 0 when not;
 *   t     abort() when the target has a controlling terminal, exit 0 when not.
 * A fuzzer's target must get its stdio and the fork-server pipes, default signal
 * dispositions, an empty signal mask, no core dumps (a core dump makes every crash slow)
 * and no terminal, as afl-fuzz gives it, whatever the orchestrator itself was given.
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
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
    if (buf[0] == 't') {
        int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
        if (tty >= 0)
            abort();
        return 0;
    }
    if (buf[0] == 'c') {
        struct rlimit core;
        if (getrlimit(RLIMIT_CORE, &core) == 0 && core.rlim_cur != 0)
            abort();
        return 0;
    }
    if (buf[0] == 's') {
        int sig = atoi(buf + 1);
        struct sigaction sa;
        sigset_t blocked;
        if (sigaction(sig, NULL, &sa) || sigprocmask(SIG_BLOCK, NULL, &blocked))
            return 0;
        if (sa.sa_handler == SIG_IGN || sigismember(&blocked, sig))
            abort();
        return 0;
    }
    if (fcntl(atoi(buf), F_GETFD) != -1)
        abort();
    return 0;
}
