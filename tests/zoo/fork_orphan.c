/* fork_orphan.c - an input starts a child and never waits for it. Input 'A' forks a
 * child that ends at once with syscall(SYS_exit_group, 0) and is left a zombie (result
 * 10); input 'L' forks a child that stays alive in pause() (result 20); any other first
 * byte only observes. Every input first counts this process's children: bit 1,
 * waitid(P_ALL, WNOHANG | WNOWAIT) finds a child; bit 2, /proc/self/task/<tid>/children
 * is not empty. An observing input exits with those bits; 'A' and 'L' exit 200 + the
 * bits instead of their result when any is set. Fork mode: 'A' -> 10, 'L' -> 20,
 * anything else -> 0 (a forked input's orphans are never its successor's children). A
 * leak looks like a later input that finds the zombie or the live child still its own,
 * or pause()ing processes that outlive the run. The forks happen in functions built
 * without coverage instrumentation: a child that nobody waits for must not write into
 * the coverage map after its parent's input has ended (that would race with reading the
 * map).
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define NO_COVERAGE __attribute__((no_sanitize_coverage, noinline))
#endif

/* a child that ends at once and is never waited for: a zombie */
NO_COVERAGE static pid_t start_zombie(void) {
    pid_t c = fork();
    if (c == 0) syscall(SYS_exit_group, 0);
    return c;
}

/* a child that stays alive and is never waited for */
NO_COVERAGE static pid_t start_sleeper(void) {
    pid_t c = fork();
    if (c == 0)
        for (;;) pause();
    return c;
}

static int observe(void) {
    int leak = 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0) leak |= 1;
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)syscall(SYS_gettid));
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        if (read(fd, buf, sizeof buf) > 0) leak |= 2;
        close(fd);
    }
    return leak;
}

int main(void) {
    signal(SIGCHLD, SIG_DFL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || (in[0] != 'A' && in[0] != 'L')) return leak;

    int r;
    if (in[0] == 'A') r = start_zombie() > 0 ? 10 : 11;
    else r = start_sleeper() > 0 ? 20 : 21;
    return leak ? 200 + leak : r;
}
