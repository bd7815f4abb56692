/* thread_after_snapshot.c - starts a thread after the snapshot point, on every input.
 *
 * Snapshot mode cannot roll a multi-threaded process back (the other threads' stacks,
 * registers and kernel state are not captured), so the runtime must notice the new
 * thread and report it (FS_ERR_THREAD_STARTED) rather than restore silently. In fork
 * mode the harness is fine: each run is a fresh child.
 *
 * Calls FORKSERVER_INIT() at the start of main, before reading the input.
 * Build with -pthread.
 *
 * Input (argv[1], or stdin when no argument is given; at most 1 MiB is read): any
 * bytes. Every input starts one thread that checksums the input; the main thread joins
 * it and exits 0. (Exit 1 only if the thread cannot be created or joined.)
 */
#define _POSIX_C_SOURCE 200809L

#include "forkserver.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_INPUT (1u << 20)

static unsigned char input[MAX_INPUT];

struct job {
    const unsigned char *buf;
    size_t len;
    uint32_t sum;
};

/* Keeps the thread's result from being optimised away. */
static volatile uint32_t sink;

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

/* Adler-32 of the input. */
static void *checksum(void *arg)
{
    struct job *job = arg;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < job->len; i++) {
        a = (a + job->buf[i]) % 65521;
        b = (b + a) % 65521;
    }
    job->sum = (b << 16) | a;
    return NULL;
}

int main(int argc, char **argv)
{
    FORKSERVER_INIT();

    struct job job = { .buf = input, .len = read_input(argc, argv) };
    pthread_t thread;
    if (pthread_create(&thread, NULL, checksum, &job) != 0 || pthread_join(thread, NULL) != 0) {
        fprintf(stderr, "thread_after_snapshot: cannot run the thread\n");
        return 1;
    }
    sink = job.sum;
    return 0;
}
