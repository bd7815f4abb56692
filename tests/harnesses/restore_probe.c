/* restore_probe.c - test-only: process state a snapshot restore must bring back, each
 * read straight from the kernel (no libc cache in between).
 *
 * Init (before FORKSERVER_INIT): maps one read-write page, opens a pipe and
 * /proc/self/exe (offset 0), resets SIGUSR2 (SIG_DFL, unblocked), and records the
 * program break (the brk system call itself, not sbrk(0), which glibc caches in memory
 * that a restore rolls back) and the lowest free fd.
 *
 * Each run first builds a bitmask, one bit per kind of state found changed:
 *   0x01  ITIMER_REAL is armed                                     (interval timers)
 *   0x02  the page mapped at init cannot be read by the kernel     (mprotect)
 *   0x04  the program break differs from the one at init           (brk)
 *   0x08  the SIGUSR2 disposition is not SIG_DFL                   (signal handlers)
 *   0x10  fd 77 is open, or the lowest free fd differs from init   (fd table)
 *   0x20  the offset of the fd opened at init is not 0             (fd offsets)
 *   0x40  SIGUSR2 is blocked                                       (signal mask)
 *   0x80  the rounding mode is not FE_TONEAREST                    (floating-point env)
 * then changes every one of them: arms ITIMER_REAL for 1000 s, mprotects the page to
 * PROT_NONE, moves the break up a page (and writes there), installs a SIGUSR2 handler,
 * opens /dev/null and dup2s it to fd 77, reads 16 bytes from the init fd, blocks
 * SIGUSR2, sets FE_UPWARD.
 *
 * Exit status = the bitmask: 0 in fork mode and after every exact restore.
 * Input (argv[1], or stdin): "SELFTEST" changes the state first and checks it after,
 * so it exits 0xff in every mode (each check sees its own change); anything else runs
 * as described above.
 */
#define _GNU_SOURCE

#include "forkserver.h"

#include <fcntl.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define PROBE_FD 77

static unsigned char *page;
static int pipe_fds[2] = {-1, -1};
static int init_fd = -1;
static int init_lowest_fd;
static uintptr_t init_brk;
static volatile unsigned long sink;

static uintptr_t raw_brk(uintptr_t to) { return (uintptr_t)syscall(SYS_brk, to); }

static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

static void on_sigusr2(int sig)
{
    (void)sig;
    sink++;
}

static void set_sigusr2(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

/* 1 when the kernel can read the page (write(2) from it does not fail with EFAULT). */
static int page_readable(void)
{
    if (write(pipe_fds[1], page, 1) != 1)
        return 0;
    unsigned char c;
    return read(pipe_fds[0], &c, 1) == 1;
}

static unsigned check_state(void)
{
    unsigned mask = 0;
    struct itimerval it;
    struct sigaction old;
    sigset_t blocked;

    if (getitimer(ITIMER_REAL, &it) == 0 && (it.it_value.tv_sec || it.it_value.tv_usec))
        mask |= 0x01;
    if (!page_readable())
        mask |= 0x02;
    if (raw_brk(0) != init_brk)
        mask |= 0x04;
    if (sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler != SIG_DFL)
        mask |= 0x08;
    if (fcntl(PROBE_FD, F_GETFD) != -1 || lowest_free_fd() != init_lowest_fd)
        mask |= 0x10;
    if (lseek(init_fd, 0, SEEK_CUR) != 0)
        mask |= 0x20;
    if (sigprocmask(SIG_BLOCK, NULL, &blocked) == 0 && sigismember(&blocked, SIGUSR2))
        mask |= 0x40;
    if (fegetround() != FE_TONEAREST)
        mask |= 0x80;
    return mask;
}

static void change_state(void)
{
    struct itimerval it = {.it_value = {.tv_sec = 1000}};
    setitimer(ITIMER_REAL, &it, NULL);

    mprotect(page, 4096, PROT_NONE);

    uintptr_t now = raw_brk(0);
    if (raw_brk(now + 4096) == now + 4096)
        memset((void *)now, 'B', 4096);

    set_sigusr2(on_sigusr2);

    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0)
        dup2(fd, PROBE_FD);

    unsigned char skip[16];
    if (read(init_fd, skip, sizeof skip) > 0)
        sink += skip[0];

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);

    fesetround(FE_UPWARD);
}

int main(int argc, char **argv)
{
    free(malloc(1));
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED || pipe(pipe_fds))
        return 2;
    page[0] = 1;
    init_fd = open("/proc/self/exe", O_RDONLY);
    if (init_fd < 0)
        return 2;
    set_sigusr2(SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    init_lowest_fd = lowest_free_fd();
    init_brk = raw_brk(0);

    FORKSERVER_INIT();

    char input[16] = {0};
    int in = argc >= 2 ? open(argv[1], O_RDONLY) : 0;
    if (in >= 0 && read(in, input, sizeof input - 1) < 0)
        input[0] = 0;
    if (in > 0)
        close(in);

    if (strncmp(input, "SELFTEST", 8) == 0) {
        change_state();
        return (int)check_state();
    }
    unsigned mask = check_state();
    change_state();
    return (int)mask;
}
