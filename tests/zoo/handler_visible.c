/* handler_visible.c - the program looks at, and sets, the signal handlers a snapshot
 * runtime may use itself. Init allocates a 64 MiB heap (malloc + memset, so that large
 * tracked regions exist) and sets SIGSEGV, SIGSYS, SIGBUS and SIGUSR1 to SIG_DFL. Every
 * input first observes: bit 1, sigaction(SIGSEGV, NULL, &old) is not SIG_DFL; bit 2, the
 * same for SIGSYS; bit 4, the same for SIGUSR1; bit 8, one of the heap bytes any input
 * of this harness writes is not 0 (a write survived); bit 16, the same as bit 1 for
 * SIGBUS. Then input 'A' installs SIGSEGV and SIGBUS handlers that exit 77 and a SIGUSR1
 * handler; every input then writes one byte in each of 16 spread-out 4 MiB pieces of the
 * heap, at page (second input byte) of the piece (in snapshot mode, into pages the
 * runtime may keep read-only or write-protected, whose writes trap) and returns:
 * 'A' 10, others the observed bits; 'A' exits 200 + the bits instead of 10 when any is
 * set. Fork mode: 'A' -> 10, anything else -> 0. A leak looks like the runtime's own
 * SIGSEGV, SIGBUS or SIGSYS handler showing through sigaction() (bits 1, 16 and 2 on
 * every input), the harness's handler being called for a fault that was the runtime's (exit
 * 77), or a later input that still has the handlers.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEAP_SIZE (64u << 20)
#define PIECE (4u << 20)

static unsigned char *heap;
/* Written through a volatile, so that the compiler cannot turn malloc + memset(0)
 * into calloc, which leaves fresh pages unpopulated: the snapshot would see holes, not
 * a large region. */
static volatile unsigned char zero_fill;
static volatile unsigned long usr1_hits;

static void on_segv(int sig) {
    (void)sig;
    _exit(77);
}

static void on_usr1(int sig) {
    (void)sig;
    usr1_hits++;
}

static int not_default(int sig) {
    struct sigaction old;
    return sigaction(sig, NULL, &old) != 0 || old.sa_handler != SIG_DFL;
}

int main(void) {
    heap = malloc(HEAP_SIZE);
    if (!heap) return 2;
    memset(heap, zero_fill, HEAP_SIZE);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGSYS, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = 0;
    if (not_default(SIGSEGV)) leak |= 1;
    if (not_default(SIGSYS)) leak |= 2;
    if (not_default(SIGUSR1)) leak |= 4;
    if (not_default(SIGBUS)) leak |= 16;
    for (size_t i = 0; i < HEAP_SIZE / PIECE; i++)
        for (size_t page = 0; page < 256; page++)
            if (heap[i * PIECE + page * 4096 + 123] != 0) leak |= 8;
    size_t off = 4096 * (size_t)(n > 1 ? in[1] : 0) + 123;

    int act = n > 0 && in[0] == 'A';
    if (act) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_segv;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
    }
    for (size_t i = 0; i < HEAP_SIZE / PIECE; i++) heap[i * PIECE + off] = (unsigned char)(i + 1);
    if (!act) return leak;
    return leak ? 200 + leak : 10;
}
