/* leaky.c - leaks process state on purpose, so that an incomplete restore shows.
 *
 * Init (before FORKSERVER_INIT): resets SIGUSR1 to SIG_DFL, opens /proc/self/exe
 * (offset 0), and records the lowest free fd number and the program break.
 *
 * Each run first checks that the state is pristine and builds a bitmask, one bit per
 * kind of state a previous run changed:
 *   0x01  a global counter is not 0                              (memory: .bss)
 *   0x02  a global pointer to a malloc'd block is not NULL       (memory: .bss)
 *   0x04  a global FILE * from fopen is not NULL                 (memory: .bss)
 *   0x08  sbrk(0) differs from the break recorded at init        (brk)
 *   0x10  a global pointer to an mmap'd region is not NULL       (memory: .bss)
 *   0x20  the SIGUSR1 disposition is not SIG_DFL                 (signal handlers)
 *   0x40  the offset of the fd opened at init is not 0           (fd offsets)
 *   0x80  the lowest free fd number differs from the one at init (fd table)
 * Each bit also takes its own branch, so leaked state changes coverage too. Then the run
 * leaks one of each: counter++, a malloc'd block (never freed), an fopen'd FILE (never
 * closed), 4 KiB from sbrk, a 64 KiB anonymous mapping, a SIGUSR1 handler, 16 bytes
 * read from the init fd, and one more open fd.
 *
 * Exit status = the bitmask: 0 in fork mode and in a snapshot mode that restores
 * everything; otherwise its bits name what was not restored. A mapping that survives
 * the restore is not visible here if its pointer was restored (0x10 checks the pointer).
 *
 * Input (argv[1], or stdin when no argument is given; at most 1 MiB is read): any
 * bytes. An uppercase first byte copies the input into the leaked block; more than
 * 64 bytes of input also writes the input into the mapping. Neither changes the status.
 *
 * Caveat: the check assumes forkserver_init() itself leaves the break, fds below the
 * recorded lowest free one and SIGUSR1 as it found them; a runtime that opens a low fd
 * or grows the break there makes every run report 0x80 or 0x08.
 */
#define _DEFAULT_SOURCE /* sbrk, MAP_ANONYMOUS */

#include "forkserver.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_INPUT (1u << 20)
#define MAP_BYTES (64u << 10)

enum {
    LEAK_COUNTER = 0x01,
    LEAK_HEAP = 0x02,
    LEAK_FILE = 0x04,
    LEAK_BRK = 0x08,
    LEAK_MMAP = 0x10,
    LEAK_SIGNAL = 0x20,
    LEAK_OFFSET = 0x40,
    LEAK_FD = 0x80,
};

static unsigned char input[MAX_INPUT];

/* Recorded at init, before the snapshot. */
static void *init_brk;
static int init_fd = -1;
static int init_lowest_fd;

/* Leaked by every run. */
static unsigned long counter;
static unsigned char *leaked_block;
static FILE *leaked_file;
static unsigned char *leaked_map;
static int leaked_fd = -1;

/* Keeps the per-bit branches and reads from being optimised away. */
static volatile unsigned long sink;

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

static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

static void on_sigusr1(int sig)
{
    (void)sig;
    sink++;
}

static void set_sigusr1(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

static void init_state(void)
{
    /* Set up malloc's main arena now, so that small allocations made later (the
     * runtime's, stdio's) come from it instead of moving the break. */
    free(malloc(1));
    set_sigusr1(SIG_DFL); /* it might have been inherited as SIG_IGN */

    init_fd = open("/proc/self/exe", O_RDONLY);
    if (init_fd < 0) {
        perror("/proc/self/exe");
        exit(2);
    }
    init_lowest_fd = lowest_free_fd();
    init_brk = sbrk(0);
}

static unsigned check_state(void)
{
    unsigned mask = 0;
    struct sigaction old;

    if (counter != 0)
        mask |= LEAK_COUNTER;
    if (leaked_block != NULL)
        mask |= LEAK_HEAP;
    if (leaked_file != NULL)
        mask |= LEAK_FILE;
    if (sbrk(0) != init_brk)
        mask |= LEAK_BRK;
    if (leaked_map != NULL)
        mask |= LEAK_MMAP;
    if (sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler != SIG_DFL)
        mask |= LEAK_SIGNAL;
    if (lseek(init_fd, 0, SEEK_CUR) != 0)
        mask |= LEAK_OFFSET;
    if (lowest_free_fd() != init_lowest_fd)
        mask |= LEAK_FD;
    return mask;
}

/* One branch per bit, each doing something different, so each leak is its own edge.
 * Leaked pointers are not dereferenced: after a partial restore they may dangle. */
static void branch_on_bits(unsigned mask)
{
    if (mask & LEAK_COUNTER)
        sink += counter;
    if (mask & LEAK_HEAP)
        sink ^= (uintptr_t)leaked_block;
    if (mask & LEAK_FILE)
        sink += (uintptr_t)leaked_file >> 4;
    if (mask & LEAK_BRK)
        sink -= 8;
    if (mask & LEAK_MMAP)
        sink ^= (uintptr_t)leaked_map >> 12;
    if (mask & LEAK_SIGNAL)
        sink += 32;
    if (mask & LEAK_OFFSET)
        sink ^= (unsigned long)lseek(init_fd, 0, SEEK_CUR);
    if (mask & LEAK_FD)
        sink += (unsigned long)leaked_fd;
}

static void leak_state(const unsigned char *buf, size_t len)
{
    counter++;

    leaked_block = malloc(4096);
    if (leaked_block)
        memset(leaked_block, 'H', 4096);

    leaked_file = fopen("/dev/null", "r");

    unsigned char *brk_area = sbrk(4096);
    if (brk_area != (void *)-1)
        memset(brk_area, 'B', 4096);

    void *map = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map != MAP_FAILED) {
        leaked_map = map;
        memset(leaked_map, 'M', MAP_BYTES);
    }

    set_sigusr1(on_sigusr1);

    unsigned char skip[16];
    if (read(init_fd, skip, sizeof skip) > 0)
        sink += skip[0];

    leaked_fd = open("/dev/null", O_RDONLY);

    /* input-dependent branches */
    if (len > 0 && buf[0] >= 'A' && buf[0] <= 'Z' && leaked_block)
        memcpy(leaked_block, buf, len < 4096 ? len : 4096);
    if (len > 64 && leaked_map)
        memcpy(leaked_map, buf, len < MAP_BYTES ? len : MAP_BYTES);
}

int main(int argc, char **argv)
{
    init_state();

    FORKSERVER_INIT();

    unsigned mask = check_state();
    branch_on_bits(mask);

    size_t len = read_input(argc, argv);
    leak_state(input, len);
    return (int)mask;
}
