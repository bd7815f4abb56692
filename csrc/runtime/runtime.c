/* Start-up of the target runtime: state, configuration, map, and the entry points a
 * harness sees (forkserver_init, main's entry, exit interception). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "forkserver.h"
#include "fs_log.h"
#include "fs_runtime.h"

struct fs_state *fs_st;
struct fs_cmplog *fs_cmplog_log;
int fs_debug_enabled;
int fs_libfuzzer_driver __attribute__((weak));
/* A byte in the program's .bss that FORKSERVER_BREAK_RESTORE corrupts after each restore. */
volatile unsigned char fs_break_target;

/* Found by `forkserver inspect` and by the orchestrator to recognise our builds. */
__attribute__((used)) static const char runtime_marker[] = FS_SIG_RUNTIME;
/* afl-fuzz refuses binaries without this string. */
__attribute__((used)) static const char afl_shm_marker[] = FS_SIG_SHM;

uint64_t fs_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The runtime's own fds live high, so that the harness sees the fd numbers it would
 * see without us. */
int fs_move_fd_high(int fd) {
    if (fd < 0) return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 200);
    if (high < 0) return fd;
    close(fd);
    return high;
}

int fs_in_runner(void) {
    return fs_st && fs_st->is_runner && fs_raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0) == fs_st->runner_pid;
}

#define FS_KCMP_VM 1 /* linux/kcmp.h */

/* The runner, or a process it started with clone(CLONE_VM) (vfork, posix_spawn,
 * LeakSanitizer's tracer): every task that writes into the runner's memory. */
int fs_shares_runner_memory(void) {
    if (fs_in_runner()) return 1;
    return fs_st && fs_st->is_runner &&
           fs_raw_syscall(SYS_kcmp, fs_raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0), fs_st->runner_pid, FS_KCMP_VM, 0,
                          0, 0) == 0;
}

/* Inside an input, in the runner itself: a process the input forked inherits the flag. */
static int in_runner_iteration(void) { return fs_st && fs_st->in_iteration && fs_in_runner(); }

extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

/* With FORKSERVER_DETECT_LEAKS, the memory an input leaked is a crash, as AFL++ makes
 * it, in every mode: LeakSanitizer checks as the input's process ends (its report goes
 * to stderr), and a leak aborts it. The check must run before a restore frees it all. */
void fs_check_leaks(void) {
    if (fs_st && fs_st->cfg.detect_leaks && __lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
        abort();
}

static void on_exit_handler(int status, void *arg) {
    (void)arg;
    fs_check_leaks();
    if (in_runner_iteration()) {
        fflush(NULL); /* exit() would flush stdio after the handlers; _exit() does not */
        fs_iteration_end((status & 0xff) << 8);
    }
}

void fs_own_memory_add(const void *start, size_t len) {
    if (fs_st->own_memory_count >= (int)(sizeof fs_st->own_memory / sizeof fs_st->own_memory[0])) return;
    struct fs_mapping_change *m = &fs_st->own_memory[fs_st->own_memory_count++];
    m->start = (uintptr_t)start;
    m->end = (uintptr_t)start + len;
}

/* The runtime's mapping at old moved to start (mremap), now len bytes long. */
void fs_own_memory_moved(const void *old, const void *start, size_t len) {
    for (int i = 0; i < fs_st->own_memory_count; i++)
        if (fs_st->own_memory[i].start == (uintptr_t)old) {
            fs_st->own_memory[i].start = (uintptr_t)start;
            fs_st->own_memory[i].end = (uintptr_t)start + len;
            return;
        }
    fs_own_memory_add(start, len);
}

/* Mutable runtime state lives in its own mapping so that no restore rolls it back. */
void fs_runtime_init(void) {
    if (fs_st) return;
    size_t size = (sizeof(struct fs_state) + FS_PAGE_SIZE - 1) & ~(FS_PAGE_SIZE - 1);
    void *p = mmap(NULL, size + 2 * FS_ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) _exit(FS_ERR_EXIT_BASE + FS_ERROR_MMAP);
    fs_st = p;
    fs_own_memory_add(p, size + 2 * FS_ALT_STACK_SIZE);
    fs_st->alt_stack = (char *)p + size;
    fs_st->signal_stack = (char *)p + size + FS_ALT_STACK_SIZE;
    fs_st->input_fd = -1;
    fs_st->snap.uffd = fs_st->snap.pagemap_fd = fs_st->snap.sparse_fd = fs_st->snap.trap_uffd = -1;
    fs_libc_init();
    fs_config_load(&fs_st->cfg);
    fs_debug_enabled = fs_env_flag(FS_ENV_DEBUG);
    fs_coverage_init();
    /* Registered first, so it runs last: the harness's own exit handlers run before
     * an iteration ends, as they would at a real exit. */
    on_exit(on_exit_handler, NULL);
}

__attribute__((constructor(101))) static void runtime_constructor(void) { fs_runtime_init(); }

void forkserver_init(void) {
    fs_runtime_init();
    fs_server_start();
}

unsigned long long forkserver_iteration(void) { return fs_st ? fs_st->iteration : 0; }

/* _exit() in the harness ends an iteration in snapshot mode, as exit() does. */
void _exit(int status) {
    if (in_runner_iteration()) fs_iteration_end((status & 0xff) << 8);
    for (;;) syscall(SYS_exit_group, status);
}

void _Exit(int status) { _exit(status); }

/* Threads started inside a snapshot iteration cannot be rolled back. libc blocks every
 * signal around its clone(), so the syscall watch could only kill the runner there:
 * catch pthread_create first, refuse it, and report the iteration as such. */
extern int __interceptor_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *)
    __attribute__((weak));

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
    if (in_runner_iteration()) {
        fs_note_thread_start();
        return EAGAIN;
    }
    /* a sanitizer's interceptor must see the thread (it registers its stack and TLS) */
    if (__interceptor_pthread_create) return __interceptor_pthread_create(thread, attr, start, arg);
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real) real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT, "pthread_create");
    return real(thread, attr, start, arg);
}
