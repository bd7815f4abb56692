/* Host-side helpers for the orchestrator (see fs_host.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs_protocol.h"
#include "fs_host.h"
#include "dirty_probe.h"
#include "fs_buckets.h"
#include "fs_novelty.h"

extern char **environ;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int fs_host_shm_create(unsigned long size, int *id) {
    int r = shmget(IPC_PRIVATE, size, IPC_CREAT | IPC_EXCL | 0600);
    if (r < 0) return -errno;
    *id = r;
    return 0;
}

int fs_host_shm_attach(int id, int readonly, void **addr) {
    void *p = shmat(id, NULL, readonly ? SHM_RDONLY : 0);
    if (p == (void *)-1) return -errno;
    *addr = p;
    return 0;
}

int fs_host_shm_detach(void *addr) { return shmdt(addr) ? -errno : 0; }

int fs_host_shm_remove(int id) { return shmctl(id, IPC_RMID, NULL) ? -errno : 0; }

int fs_host_write_u32(int fd, unsigned int value) {
    ssize_t n;
    do n = write(fd, &value, 4);
    while (n < 0 && errno == EINTR);
    if (n == 4) return 0;
    return n < 0 ? -errno : -EPIPE;
}

/* timeout_ms < 0: wait for ever */
int fs_host_read_u32(int fd, int timeout_ms, unsigned int *value) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (r == 0) return -ETIMEDOUT;
    ssize_t n;
    do n = read(fd, value, 4);
    while (n < 0 && errno == EINTR);
    if (n == 4) return 0;
    return n < 0 ? -errno : -EPIPE; /* EOF: the server is gone */
}

#define REPLY_GRACE_MS 10000

int fs_host_fork_run(int ctl_fd, int st_fd, unsigned int was_killed, int timeout_ms,
                     struct fs_run_result *res) {
    unsigned int pid, status;
    memset(res, 0, sizeof *res);
    int r = fs_host_write_u32(ctl_fd, was_killed);
    if (r) return r;
    if ((r = fs_host_read_u32(st_fd, REPLY_GRACE_MS, &pid))) return r;
    res->pid = (int)pid;
    uint64_t t0 = now_ns();
    r = fs_host_read_u32(st_fd, timeout_ms, &status);
    if (r == -ETIMEDOUT) {
        res->timed_out = 1;
        if ((int)pid > 0) kill((pid_t)pid, SIGKILL);
        r = fs_host_read_u32(st_fd, REPLY_GRACE_MS, &status);
    }
    res->exec_ns = now_ns() - t0;
    if (r) return r;
    res->status = (int)status;
    return 0;
}

/* The timeout applies to each input: the runner stamps each input's start in the
 * control block, and a wake-up before that input's deadline just waits on. */
int fs_host_snapshot_run(int ctl_fd, int st_fd, struct fs_control *ctl, int runner_pid,
                         int timeout_ms, struct fs_batch_result *res) {
    memset(res, 0, sizeof *res);
    uint64_t t0 = now_ns(), timeout_ns = (uint64_t)timeout_ms * 1000000ull;
    __atomic_store_n(&ctl->input_start_ns, t0, __ATOMIC_RELEASE); /* until the first input starts */
    /* a runner that is already gone never reads the command: the last batch's count must
     * not pass for this one's */
    __atomic_store_n(&ctl->completed, 0, __ATOMIC_RELEASE);
    int r = fs_host_write_u32(ctl_fd, FS_CMD_RUN);
    if (r) return r;
    int wait_ms = timeout_ms;
    for (;;) {
        unsigned int msg;
        r = fs_host_read_u32(st_fd, wait_ms, &msg);
        if (r == -ETIMEDOUT && !res->timed_out) {
            uint64_t start = __atomic_load_n(&ctl->input_start_ns, __ATOMIC_ACQUIRE), now = now_ns();
            if (start > now || now - start < timeout_ns) { /* a later input: its own deadline */
                uint64_t left_ns = start > now ? timeout_ns : timeout_ns - (now - start);
                wait_ms = (int)((left_ns + 999999) / 1000000);
                continue;
            }
            res->timed_out = 1;
            if (runner_pid > 0) kill(runner_pid, SIGKILL); /* never kill(0): our own group */
            wait_ms = REPLY_GRACE_MS;
            continue;
        }
        if (r == -ETIMEDOUT) return r; /* the server does not answer after the kill */
        if (r) return r;
        if (msg == FS_MSG_DONE && !res->timed_out) {
            res->done = 1;
            break;
        }
        if (msg == FS_MSG_RUNNER_DIED) {
            unsigned int status;
            res->end_ns = now_ns();
            if ((r = fs_host_read_u32(st_fd, REPLY_GRACE_MS, &status))) return r;
            res->runner_died = 1;
            res->status = (int)status;
            res->never_started = __atomic_load_n(&ctl->input_start_ns, __ATOMIC_ACQUIRE) == t0;
            break;
        }
        if (msg != FS_MSG_DONE) return -EPROTO;
    }
    res->wall_ns = now_ns() - t0;
    return 0;
}

static void tally_status(struct fs_loop_tally *tally, int status, int timed_out) {
    if (timed_out) tally->timeouts++;
    else if (WIFSIGNALED(status)) tally->signals[WTERMSIG(status) & 63]++;
    else tally->exits[WEXITSTATUS(status)]++;
}

int fs_host_snapshot_loop(int ctl_fd, int st_fd, struct fs_control *ctl, int runner_pid,
                          int timeout_ms, int batches, unsigned long long *wall_ns, struct fs_loop_tally *tally) {
    struct fs_batch_result res;
    uint64_t t0 = now_ns();
    for (int i = 0; i < batches; i++) {
        int r = fs_host_snapshot_run(ctl_fd, st_fd, ctl, runner_pid, timeout_ms, &res);
        if (r) return r;
        for (unsigned k = 0; k < ctl->completed && k < FS_MAX_BATCH; k++)
            tally_status(tally, (int)ctl->results[k].status, 0);
        if (!res.done) { /* the runner died in an input (a crash, a timeout): it is tallied too */
            if (ctl->completed < ctl->batch_count) tally_status(tally, res.status, res.timed_out);
            *wall_ns = now_ns() - t0;
            return -ECHILD;
        }
    }
    *wall_ns = now_ns() - t0;
    return 0;
}

int fs_host_fork_loop(int ctl_fd, int st_fd, unsigned char *map, unsigned int map_size,
                      int timeout_ms, int runs, unsigned long long *wall_ns, struct fs_loop_tally *tally) {
    struct fs_run_result res;
    uint64_t t0 = now_ns();
    unsigned int was_killed = 0;
    for (int i = 0; i < runs; i++) {
        memset(map, 0, map_size);
        int r = fs_host_fork_run(ctl_fd, st_fd, was_killed, timeout_ms, &res);
        if (r) return r;
        tally_status(tally, res.status, res.timed_out);
        was_killed = res.timed_out ? 1 : 0;
    }
    *wall_ns = now_ns() - t0;
    return 0;
}

int fs_host_probe_backend(int backend, char *reason, unsigned long len) {
    switch (backend) {
    case FS_BACKEND_PAGEMAP_SCAN: return fs_probe_pagemap_scan(reason, len);
    case FS_BACKEND_SOFT_DIRTY: return fs_probe_soft_dirty(reason, len);
    case FS_BACKEND_MPROTECT:
    case FS_BACKEND_FULL_COPY: return fs_probe_always(reason, len);
    }
    return -EINVAL;
}


unsigned int fs_host_classify(const unsigned char *map, unsigned int size, unsigned char *out) {
    unsigned int hits = 0;
    for (unsigned int i = 0; i < size; i++) {
        out[i] = fs_bucket_of[map[i]];
        hits += map[i] != 0;
    }
    return hits;
}

int fs_host_has_new_bits(const unsigned char *map, unsigned char *virgin, unsigned int size, int update) {
    return fs_new_bits(map, virgin, size, update);
}

/* ---- process-creation primitives, for `forkserver bench spawn` ---- */

static char vfork_stack[64 * 1024] __attribute__((aligned(16)));

static int clone_child(void *arg) {
    (void)arg;
    _exit(0);
}

static int one_spawn(int primitive, const char *exec_path) {
    pid_t pid;
    int status;
    char *const argv[] = {(char *)exec_path, NULL};
    switch (primitive) {
    case 0: /* fork + exit + wait */
        pid = fork();
        if (pid == 0) _exit(0);
        break;
    case 1: /* vfork + exec */
        pid = vfork();
        if (pid == 0) {
            execve(exec_path, argv, environ);
            _exit(127);
        }
        break;
    case 2: /* posix_spawn */
        if (posix_spawn(&pid, exec_path, NULL, NULL, argv, environ)) return -errno;
        break;
    case 3: /* clone(CLONE_VM | CLONE_VFORK) */
        pid = clone(clone_child, vfork_stack + sizeof vfork_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
        break;
    default:
        return -EINVAL;
    }
    if (pid < 0) return -errno;
    if (waitpid(pid, &status, 0) < 0) return -errno;
    return 0;
}

int fs_host_spawn_bench(int primitive, int iterations, const char *exec_path, double *ns_per_op) {
    uint64_t t0 = now_ns();
    for (int i = 0; i < iterations; i++) {
        int r = one_spawn(primitive, exec_path);
        if (r) return r;
    }
    *ns_per_op = (double)(now_ns() - t0) / iterations;
    return 0;
}
