/* Host-side helpers for the orchestrator, built by cffi. Each does one system-level job
 * and returns 0 or -errno; meaning and error messages live in Python. This file is
 * also the cffi declaration (keep it to plain declarations). */

struct fs_run_result {
    int pid;
    int status;          /* wait(2) status */
    int timed_out;
    unsigned long long exec_ns;
};

struct fs_batch_result {
    int done;            /* FS_MSG_DONE: every input of the batch ran */
    int runner_died;     /* FS_MSG_RUNNER_DIED: the runner is gone, status below */
    int status;
    int timed_out;       /* we killed the runner: input ctl->completed hung */
    unsigned long long wall_ns;
    unsigned long long end_ns; /* CLOCK_MONOTONIC when the runner was reported gone */
    int never_started;   /* the runner was gone before the batch's first input started */
};

int fs_host_shm_create(unsigned long size, int *id);
int fs_host_shm_attach(int id, int readonly, void **addr);
int fs_host_shm_detach(void *addr);
int fs_host_shm_remove(int id);

int fs_host_write_u32(int fd, unsigned int value);
int fs_host_read_u32(int fd, int timeout_ms, unsigned int *value);

/* One AFL++ fork-server execution: send was_killed, read pid, wait for the status. */
int fs_host_fork_run(int ctl_fd, int st_fd, unsigned int was_killed, int timeout_ms,
                     struct fs_run_result *result);

/* One batch in snapshot mode; timeout_ms applies to each input of the batch. */
int fs_host_snapshot_run(int ctl_fd, int st_fd, struct fs_control *ctl, int runner_pid,
                         int timeout_ms, struct fs_batch_result *result);

/* What a C loop saw, one count per run: each exit code, each signal, and the timeouts. */
struct fs_loop_tally {
    unsigned long long exits[256];
    unsigned long long signals[65];
    unsigned long long timeouts;
};

/* Runs the control block's batch `batches` times back to back from C, for comparing the
 * Python-driven loop; adds every run's outcome to tally. -ECHILD when the runner died in
 * an input: the tally holds the runs up to that one, and a new runner is needed. */
int fs_host_snapshot_loop(int ctl_fd, int st_fd, struct fs_control *ctl, int runner_pid,
                          int timeout_ms, int batches, unsigned long long *wall_ns, struct fs_loop_tally *tally);
int fs_host_fork_loop(int ctl_fd, int st_fd, unsigned char *map, unsigned int map_size,
                      int timeout_ms, int runs, unsigned long long *wall_ns, struct fs_loop_tally *tally);

/* Dirty-page backend probes: 0 when the backend works here, else -1 and a reason. */
int fs_host_probe_backend(int backend, char *reason, unsigned long len);

/* Bucketed hit counts of map[0..size) -> out; returns the number of non-zero bytes. */
unsigned int fs_host_classify(const unsigned char *map, unsigned int size, unsigned char *out);
/* 1 when the bucketed map hits bytes still set in virgin, 2 when one of them is a new edge. */
int fs_host_has_new_bits(const unsigned char *map, unsigned char *virgin, unsigned int size, int update);

/* Process-creation primitives timed from this process: fork+exit+wait, vfork+exec,
 * posix_spawn, clone(CLONE_VM|CLONE_VFORK). Returns mean ns per operation. */
int fs_host_spawn_bench(int primitive, int iterations, const char *exec_path, double *ns_per_op);
