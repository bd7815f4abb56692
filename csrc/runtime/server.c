/* The fork server (AFL++ protocol on fds 198/199) and the snapshot runner's loop:
 * begin an iteration, end it on exit()/_exit()/return, roll back, go again. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "fs_log.h"
#include "fs_runtime.h"

int fs_coverage_map_fits(void);

/* Raw calls: the runner's own traffic must not pass through the syscall watch. */
static int write_u32(int fd, uint32_t v) {
    return fs_raw_syscall(SYS_write, fd, (long)&v, 4, 0, 0, 0) == 4 ? 0 : -1;
}

static int read_u32(int fd, uint32_t *v) {
    long n;
    do n = fs_raw_syscall(SYS_read, fd, (long)v, 4, 0, 0, 0);
    while (n == -EINTR);
    return n == 4 ? 0 : -1;
}

static __attribute__((noreturn)) void die_exit(int code) { for (;;) fs_raw_syscall(SYS_exit_group, code, 0, 0, 0, 0, 0); }

/* Dies with its parent: a fuzzer that goes away (even by SIGKILL) takes its fork
 * server with it, and the server its children, hung or not. */
static void die_with_parent(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) die_exit(0); /* the parent died before the call */
}

/* ---- input delivery ---- */

/* Writes the input where the harness reads it. The runner is the file's only writer,
 * so it truncates only when the file must shrink (ftruncate is not cheap). */
static void write_input_file(int fd, const unsigned char *data, size_t len) {
    int shrink = !fs_st->is_runner || len < fs_st->materialised_len;
    if (pwrite(fd, data, len, 0) != (ssize_t)len || (shrink && ftruncate(fd, (off_t)len) != 0))
        FS_PWARN("cannot write the input to fd %d", fd);
    fs_st->materialised_len = len;
}

static void materialise_input(const unsigned char *data, size_t len) {
    struct fs_config *cfg = &fs_st->cfg;
    if (cfg->input_file && fs_st->input_fd >= 0) write_input_file(fs_st->input_fd, data, len);
    if (cfg->input_stdin) {
        write_input_file(0, data, len);
        lseek(0, 0, SEEK_SET);
    }
}

static void take_input_from_fuzz_shm(void) {
    if (!fs_st->shm_fuzz_accepted) return;
    uint32_t len = *(const uint32_t *)fs_st->fuzz_shm;
    if (len > FS_SHM_FUZZ_MAX) len = FS_SHM_FUZZ_MAX;
    fs_st->input = fs_st->fuzz_shm + FS_SHM_FUZZ_HEADER;
    fs_st->input_len = len;
    materialise_input(fs_st->input, len);
}

int fs_input_from_runtime(const unsigned char **data, size_t *len) {
    if (!fs_st || !fs_st->input) return 0;
    *data = fs_st->input;
    *len = fs_st->input_len;
    return 1;
}

/* ---- iterations in snapshot mode ---- */

static void runner_report_error_and_exit(int code, const char *detail) {
    struct fs_control *ctl = fs_st->ctl;
    if (ctl) {
        ctl->error_code = (unsigned)code;
        snprintf(ctl->error_detail, sizeof ctl->error_detail, "%s", detail);
    } else {
        FS_WARN("snapshot runner stopped: %s", detail);
    }
    die_exit(FS_ERR_EXIT_BASE + code);
}

static void iteration_begin(void) {
    if (fs_st->direct) {
        struct fs_control *ctl = fs_st->ctl;
        if (fs_st->batch_index >= ctl->batch_count) {
            uint32_t cmd;
            if (write_u32(fs_st->st_fd, fs_st->iteration ? FS_MSG_DONE : FS_MSG_READY) ||
                read_u32(fs_st->ctl_fd, &cmd) || cmd != FS_CMD_RUN)
                die_exit(0); /* the orchestrator is gone */
            fs_st->batch_index = 0;
            ctl->completed = 0;
            if (ctl->batch_count > FS_MAX_BATCH) runner_report_error_and_exit(FS_ERR_INPUT_TOO_LARGE, "batch too large");
        }
        const unsigned char *rec = ctl->input_area + ctl->input_offsets[fs_st->batch_index];
        uint32_t len;
        memcpy(&len, rec, 4);
        fs_st->input = rec + 4;
        fs_st->input_len = len;
        materialise_input(fs_st->input, len);
    } else if (fs_st->afl_exchange) {
        /* afl-fuzz's per-input exchange, answered here (see afl_direct_server_loop) */
        volatile uint32_t *exchange = fs_st->afl_exchange;
        if (fs_st->iteration) {
            /* this input's status and, ahead of its command, the next input's pid: one
             * write, and afl-fuzz finds the pid waiting when it sends the command */
            uint32_t words[2] = {FS_STATUS_STOPPED, (uint32_t)fs_st->runner_pid};
            if (fs_raw_syscall(SYS_write, fs_st->st_fd, (long)words, sizeof words, 0, 0, 0) != sizeof words)
                die_exit(0);
            /* read into the shared page: a runner killed as the command arrives may still
             * take it, and the server must know whether it did */
            exchange[1] = FS_EXCHANGE_NO_CMD;
            *exchange = FS_EXCHANGE_PID_AHEAD;
            if (read_u32(fs_st->ctl_fd, (uint32_t *)&exchange[1])) die_exit(0); /* afl-fuzz is gone */
        } else {
            if (write_u32(fs_st->st_fd, (uint32_t)fs_st->runner_pid)) die_exit(0);
        }
        *exchange = FS_EXCHANGE_PID_SENT;
        take_input_from_fuzz_shm();
    } else {
        /* AFL++ persistent protocol: stop to report the last iteration, wait for SIGCONT. */
        if (fs_st->iteration) fs_raw_syscall(SYS_kill, fs_st->runner_pid, SIGSTOP, 0, 0, 0, 0);
        take_input_from_fuzz_shm();
    }
    fs_coverage_reset_for_run();
    fs_st->in_iteration = 1;
    fs_st->iteration_start_ns = fs_now_ns();
    if (fs_st->direct) __atomic_store_n(&fs_st->ctl->input_start_ns, fs_st->iteration_start_ns, __ATOMIC_RELEASE);
}

static void retire_runner(int status) __attribute__((noreturn));
static void retire_runner(int status) {
    if (fs_st->direct) {
        fs_st->ctl->retired = (unsigned)(fs_st->snap.retire_reason ? fs_st->snap.retire_reason : FS_ERR_RESTORE_FAILED);
        snprintf(fs_st->ctl->error_detail, sizeof fs_st->ctl->error_detail, "%s", fs_st->snap.retire_detail);
        die_exit(0);
    }
    if (fs_st->snap.retire_reason == FS_ERR_THREAD_STARTED)
        FS_WARN("a thread was started after the snapshot: %s", fs_st->snap.retire_detail);
    die_exit(WIFEXITED(status) ? WEXITSTATUS(status) : FS_ERR_EXIT_BASE + fs_st->snap.retire_reason);
}

/* Ends the runner after the current input: its result is in, the state it left cannot
 * (or may not) be rolled back. The next input gets a fresh runner. */
static void retire_after(struct fs_result *res, unsigned flag, int status) {
    if (res) {
        res->flags |= flag;
        fs_st->ctl->completed = fs_st->batch_index;
    }
    retire_runner(status);
}

static void note_failure(int reason, const char *err) {
    fs_st->snap.retire_reason = reason;
    snprintf(fs_st->snap.retire_detail, sizeof fs_st->snap.retire_detail, "%s", err);
}

static unsigned clamp_u32(uint64_t v) { return v > 0xffffffffu ? 0xffffffffu : (unsigned)v; }

/* Runs on the runtime's own stack, so that it can roll back the program's stack. */
static void iteration_finish(void) {
    struct fs_control *ctl = fs_st->ctl;
    struct fs_result *res = fs_st->direct ? &ctl->results[fs_st->batch_index] : NULL;
    int status = fs_st->pending_status;
    if (res) {
        memset(res, 0, sizeof *res);
        res->status = (unsigned)status;
        res->exec_ns = clamp_u32(fs_now_ns() - fs_st->iteration_start_ns);
        if (ctl->check_coverage & FS_CHECK_HASH) {
            res->map_hash = fs_coverage_hash();
            res->flags |= FS_RESULT_HASHED;
        }
        if ((ctl->check_coverage & FS_CHECK_NOVELTY) && fs_st->virgin) res->flags |= fs_coverage_novelty(fs_st->virgin);
    }
    fs_st->iteration++;
    fs_st->batch_index++;
    if (fs_st->snap.retire_reason)
        retire_after(res, fs_st->snap.threads_started ? FS_RESULT_THREAD_STARTED : 0, status);

    uint64_t t0 = fs_now_ns();
    char err[256] = "";
    if (fs_snapshot_restore(err, sizeof err) != 0) {
        if (!res) runner_report_error_and_exit(FS_ERR_RESTORE_FAILED, err);
        note_failure(FS_ERR_RESTORE_FAILED, err);
        retire_after(res, FS_RESULT_RESTORE_FAILED, status);
    }
    if (fs_st->snap.retire_reason) retire_after(res, 0, status); /* state the restore could not take back */
    uint64_t restore_ns = fs_now_ns() - t0;
    if (fs_st->cfg.break_restore & FS_BREAK_MEMORY) fs_break_target++;
    if (fs_st->cfg.verify && fs_snapshot_verify(err, sizeof err) != 0) {
        if (!res) runner_report_error_and_exit(FS_ERR_VERIFY_MISMATCH, err);
        note_failure(FS_ERR_VERIFY_MISMATCH, err);
        retire_after(res, FS_RESULT_VERIFY_FAILED, status);
    }
    if (res) {
        res->restore_ns = clamp_u32(restore_ns);
        res->dirty_pages = (unsigned)fs_st->snap.dirty_pages;
        ctl->runner_iterations = fs_st->iteration;
        ctl->completed = fs_st->batch_index;
    }
    fs_libc.siglongjmp(fs_st->snap.resume, 1); /* the restore put the mask back itself */
}

void fs_iteration_end(int wait_status) {
    fs_st->in_iteration = 0;
    fs_st->pending_status = wait_status;
    fs_call_on_stack(fs_st->alt_stack + FS_ALT_STACK_SIZE, iteration_finish);
}

/* The snapshot point. Nothing here may live in stack variables past the snapshot:
 * after a restore, execution resumes at sigsetjmp with the stack as it was. */
static __attribute__((noinline)) void snapshot_and_begin(void) {
    char err[256] = "";
    int backend = fs_st->cfg.backend;
    if (backend < 0) runner_report_error_and_exit(FS_ERR_BACKEND_UNAVAILABLE, "unknown backend name");
    if (backend == FS_BACKEND_AUTO) backend = fs_tracker_auto(err, sizeof err);
    else if (fs_tracker_get(backend)->probe(err, sizeof err) != 0)
        runner_report_error_and_exit(FS_ERR_BACKEND_UNAVAILABLE, err);
    uint64_t t0 = fs_now_ns();
    if (fs_snapshot_take(backend, err, sizeof err) != 0)
        runner_report_error_and_exit(fs_st->snap.retire_reason ? fs_st->snap.retire_reason : FS_ERR_SNAPSHOT_FAILED, err);
    if (fs_st->ctl) {
        fs_st->ctl->backend = (unsigned)backend;
        fs_st->ctl->snapshot_ns = fs_now_ns() - t0;
    }
    sigsetjmp(fs_st->snap.resume, 0);
    iteration_begin();
}

/* The runner's protocol pipes move out of the program's sight, and out of any program
 * it execs; in fork mode the input's process has no 198/199 either. */
static void hide_protocol_fds(void) {
    fs_st->ctl_fd = fcntl(FS_FORKSRV_CTL_FD, F_DUPFD_CLOEXEC, 200);
    fs_st->st_fd = fcntl(FS_FORKSRV_ST_FD, F_DUPFD_CLOEXEC, 200);
    close(FS_FORKSRV_CTL_FD);
    close(FS_FORKSRV_ST_FD);
}

static void become_runner(void) {
    fs_st->is_runner = 1;
    fs_st->runner_pid = fs_raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
    if (fs_st->direct || fs_st->afl_exchange) hide_protocol_fds();
    fs_st->materialised_len = (size_t)-1;
    if (fs_st->ctl) {
        fs_st->ctl->runner_pid = (unsigned)getpid();
        fs_st->ctl->completed = 0;
        fs_st->ctl->batch_count = 0;
        fs_st->ctl->retired = 0;
        fs_st->ctl->error_code = 0;
        fs_st->ctl->error_detail[0] = 0;
    }
    snapshot_and_begin();
}

/* ---- the fork server ---- */

/* An AFL++ error code in the form the handshake in use reads. */
static uint32_t error_word(int new_handshake, uint32_t code) {
    return new_handshake ? FS_NEW_ERROR | code : FS_OPT_ERROR | (code << 8);
}

static void attach_fuzz_shm(int new_handshake) {
    void *p = shmat(fs_st->cfg.shm_fuzz_id, NULL, SHM_RDONLY);
    if (p == (void *)-1) {
        FS_PWARN("cannot attach the test-case buffer (shm id %d)", fs_st->cfg.shm_fuzz_id);
        write_u32(FS_FORKSRV_ST_FD, error_word(new_handshake, FS_ERROR_SHM_OPEN));
        die_exit(FS_ERR_EXIT_BASE + FS_ERROR_SHM_OPEN);
    }
    fs_st->fuzz_shm = p;
    fs_st->shm_fuzz_accepted = 1;
}

/* A segment the orchestrator made, read-write; a runner that cannot attach it dies. */
static void *attach_segment(int id, const char *what) {
    void *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        FS_PWARN("cannot attach the %s (shm id %d)", what, id);
        die_exit(FS_ERR_EXIT_BASE + FS_ERROR_SHM_OPEN);
    }
    return p;
}

static void attach_control_block(void) {
    fs_st->ctl = attach_segment(fs_st->cfg.ctl_shm_id, "control block");
    if (fs_st->ctl->magic != FS_CTL_MAGIC || fs_st->ctl->version != FS_CTL_VERSION) {
        FS_WARN("control block has the wrong version: runtime and orchestrator do not match");
        die_exit(FS_ERR_EXIT_BASE + FS_ERROR_SHM_OPEN);
    }
    fs_st->ctl->map_size = fs_map_size;
}

/* A forked child shares the server's open file descriptions: reading a file the
 * harness opened during initialisation moves the offset for every later child.
 * Fork mode rewinds them after each child, as a snapshot restore does. */
static void rewind_server_fds(void) {
    for (int i = 0; i < fs_st->server_fd_count; i++)
        if (fs_st->server_fds[i].offset >= 0)
            lseek(fs_st->server_fds[i].fd, fs_st->server_fds[i].offset, SEEK_SET);
}

/* The fuzzer's next command: one the handshake already read (*first_cmd, then -1),
 * or the next from the pipe; the server ends when the fuzzer is gone. */
static uint32_t next_command(int64_t *first_cmd) {
    uint32_t cmd;
    if (*first_cmd >= 0) {
        cmd = (uint32_t)*first_cmd;
        *first_cmd = -1;
    } else if (read_u32(FS_FORKSRV_CTL_FD, &cmd)) {
        die_exit(0);
    }
    return cmd;
}

/* Returns in the child (which then runs the harness); the server itself never returns.
 * first_cmd: a run command the handshake already read, or -1. */
static void server_loop(int64_t first_cmd) {
    int stop_tracing = fs_st->cfg.persistent || fs_st->cfg.mode == FS_MODE_SNAPSHOT;
    pid_t child = -1;
    int child_stopped = 0, status;
    for (;;) {
        uint32_t cmd = next_command(&first_cmd);
        /* a run command the runner never read (killed on a timeout first) is left in
         * the pipe: it was never meant for the server */
        if (cmd == FS_CMD_RUN && fs_st->direct) continue;
        if (cmd == FS_CMD_NEW_RUNNER && fs_st->direct) {
            pid_t server = getpid(), runner = fork();
            if (runner < 0) die_exit(FS_ERR_EXIT_BASE + FS_ERR_SNAPSHOT_FAILED);
            if (runner == 0) {
                die_with_parent(server);
                become_runner();
                return;
            }
            /* no pid message: the runner may already be writing FS_MSG_READY (its pid
             * is in the control block); the server speaks again only when it dies */
            while (waitpid(runner, &status, 0) < 0 && errno == EINTR) {}
            uint32_t msg[2] = {FS_MSG_RUNNER_DIED, (uint32_t)status};
            if (write(FS_FORKSRV_ST_FD, msg, sizeof msg) != sizeof msg) die_exit(0);
            continue;
        }
        if (child_stopped && cmd) { /* the fuzzer killed the stopped child on a timeout */
            waitpid(child, &status, 0);
            child_stopped = 0;
        }
        if (child_stopped) {
            kill(child, SIGCONT);
            child_stopped = 0;
        } else {
            pid_t server = getpid();
            child = fork();
            if (child < 0) die_exit(FS_ERR_EXIT_BASE + FS_ERR_SNAPSHOT_FAILED);
            if (child == 0) {
                die_with_parent(server);
                close(FS_FORKSRV_CTL_FD);
                close(FS_FORKSRV_ST_FD);
                if (fs_st->cfg.mode == FS_MODE_SNAPSHOT) {
                    become_runner();
                } else {
                    fs_st->in_forked_input = 1;
                    take_input_from_fuzz_shm();
                    fs_map[0] = 1;
                }
                return;
            }
        }
        if (write_u32(FS_FORKSRV_ST_FD, (uint32_t)child)) die_exit(0);
        while (waitpid(child, &status, stop_tracing ? WUNTRACED : 0) < 0 && errno == EINTR) {}
        if (WIFSTOPPED(status)) child_stopped = 1;
        else if (fs_st->cfg.mode == FS_MODE_FORK) rewind_server_fds();
        if (write_u32(FS_FORKSRV_ST_FD, (uint32_t)status)) die_exit(0);
    }
}

/* Snapshot mode under afl-fuzz: the runner answers afl-fuzz's per-input exchange
 * itself (the pid, then a stopped status, as from a persistent child), so that an input
 * costs two wake-ups where SIGCONT, SIGSTOP and the server's waitpid cost four. The
 * server stands by in waitpid, and owes afl-fuzz what the runner could not send when
 * it dies: a crash, afl-fuzz's kill on a timeout, a retirement. A shared word says how
 * far the runner got with the current input. The next command forks a new runner.
 * After an input the runner sends its pid for the next one with the status, before
 * the command: afl-fuzz does not wait for it, and a runner that dies before reading
 * that command leaves the server to read it and answer with the death's status. (A
 * runner killed from outside in the few instructions between a pipe operation and the
 * shared word's update would leave the two out of step; afl-fuzz kills only a runner
 * that is running an input.) */
static void afl_direct_server_loop(int64_t first_cmd) {
    volatile uint32_t *exchange = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (exchange == MAP_FAILED) die_exit(FS_ERR_EXIT_BASE + FS_ERR_SNAPSHOT_FAILED);
    for (;;) {
        next_command(&first_cmd); /* was_killed: every runner starts from the snapshot anyway */
        *exchange = FS_EXCHANGE_CMD_READ;
        pid_t server = getpid(), runner = fork();
        if (runner < 0) die_exit(FS_ERR_EXIT_BASE + FS_ERR_SNAPSHOT_FAILED);
        if (runner == 0) {
            die_with_parent(server);
            fs_st->afl_exchange = exchange;
            become_runner();
            return;
        }
        int status;
        while (waitpid(runner, &status, 0) < 0 && errno == EINTR) {}
        switch (*exchange) {
        case FS_EXCHANGE_PID_AHEAD: /* the pid of a command it may not have read: that command is answered here */
            if (exchange[1] == FS_EXCHANGE_NO_CMD) next_command(&first_cmd);
            break;
        case FS_EXCHANGE_CMD_READ: /* died before its pid went out: send one, afl-fuzz reads it first */
            if (write_u32(FS_FORKSRV_ST_FD, (uint32_t)runner)) die_exit(0);
            break;
        }
        if (write_u32(FS_FORKSRV_ST_FD, (uint32_t)status)) die_exit(0);
    }
}

/* ---- the AFL++ handshake ----
 * afl-fuzz before 4.20c reads an options word first (the old handshake); 4.20c and later
 * send a versioned hello back complemented (the new one), and still take the old one,
 * except from a CMPLOG instance (afl-fuzz -c). The runtime speaks first, so it cannot
 * ask which fuzzer listens. The new handshake tells them apart: a new fuzzer answers
 * the hello with its complement, while an old one takes it for classic AFL's (no
 * options) and its next word is the first run's was_killed, 0 or 1. That old fuzzer
 * then keeps a full-size map (8 MiB, cleared at every run) and no test-case buffer,
 * so the old handshake stays the default where it carries everything:
 *   auto: new for maps over 8 MiB (the old one cannot carry their size) and for
 *         afl-fuzz -c's CMPLOG instance whose comparison map has a 4.20c or later
 *         layout (which says the fuzzer is that new); old otherwise;
 *   old, new: FORKSERVER_AFL_HANDSHAKE's choice. */
struct handshake {
    int fuzzer;          /* a fuzzer listens on fds 198/199 */
    int64_t first_cmd;   /* an old fuzzer's first run command, read in place of an answer; -1 if none */
};

static int speaks_new_handshake_first(int aflpp_cmplog) {
    const char *choice = getenv(FS_ENV_AFL_HANDSHAKE);
    if (choice && strcmp(choice, "old") == 0) return 0;
    if (choice && strcmp(choice, "new") == 0) return 1;
    return fs_map_size > FS_OPT_MAX_MAPSIZE || aflpp_cmplog == FS_AFLPP_CMPLOG_420 ||
           aflpp_cmplog == FS_AFLPP_CMPLOG_422;
}

/* afl-fuzz -c's CMPLOG instance, whose __AFL_CMPLOG_SHM_ID is its comparison map:
 * the layout of that map (FS_AFLPP_CMPLOG_*), or UNKNOWN if this program cannot log
 * into it; NONE when it is not that instance. */
static int aflpp_cmplog_layout(void) {
    if (!getenv(FS_ENV_AFLPP_CMPLOG_SHM_ID)) return FS_AFLPP_CMPLOG_NONE;
    if (fs_aflpp_cmplog_attach) return fs_aflpp_cmplog_attach();
    FS_WARN("afl-fuzz -c runs this program to log comparisons, but it was built without them: "
            "build it with `forkserver build --cmplog`");
    return FS_AFLPP_CMPLOG_UNKNOWN;
}

static struct handshake speak_old_handshake(int offer_shm, int aflpp_cmplog) {
    struct handshake h = {.fuzzer = 1, .first_cmd = -1};
    uint32_t hello = FS_OPT_ENABLED;
    /* afl-fuzz -c (4.04c) takes a CMPLOG instance only with this bit */
    if (aflpp_cmplog == FS_AFLPP_CMPLOG_404) hello |= FS_OPT_NEWCMPLOG;
    /* a larger map has no room in the options word: the fuzzer keeps the size it set */
    if (fs_map_size <= FS_OPT_MAX_MAPSIZE) hello |= FS_OPT_MAPSIZE | ((fs_map_size - 1) << 1);
    if (offer_shm) hello |= FS_OPT_SHDMEM_FUZZ;
    int fits = fs_coverage_map_fits();
    if (!fits) hello = error_word(0, FS_ERROR_MAP_SIZE);
    if (write_u32(FS_FORKSRV_ST_FD, hello)) {
        h.fuzzer = 0;
        return h;
    }
    die_with_parent(getppid());
    if (!fits) die_exit(FS_ERR_EXIT_BASE + FS_ERROR_MAP_SIZE);
    if (offer_shm) {
        uint32_t reply;
        if (read_u32(FS_FORKSRV_CTL_FD, &reply)) die_exit(0);
        if ((reply & FS_OPT_ENABLED) == FS_OPT_ENABLED && (reply & FS_OPT_SHDMEM_FUZZ)) attach_fuzz_shm(0);
    }
    return h;
}

static struct handshake speak_new_handshake(int offer_shm) {
    struct handshake h = {.fuzzer = 1, .first_cmd = -1};
    int fits = fs_coverage_map_fits();
    /* an error goes out first, in place of the hello, as AFL++'s runtime sends it */
    if (write_u32(FS_FORKSRV_ST_FD, fits ? FS_NEW_HELLO : error_word(1, FS_ERROR_MAP_SIZE))) {
        h.fuzzer = 0;
        return h;
    }
    die_with_parent(getppid());
    if (!fits) die_exit(FS_ERR_EXIT_BASE + FS_ERROR_MAP_SIZE);
    uint32_t reply;
    if (read_u32(FS_FORKSRV_CTL_FD, &reply)) die_exit(0);
    if (reply != FS_NEW_HELLO_REPLY) { /* an old fuzzer: classic AFL from here on */
        h.first_cmd = reply;
        return h;
    }
    uint32_t options = FS_NEW_OPT_MAPSIZE | (offer_shm ? FS_NEW_OPT_SHDMEM_FUZZ : 0);
    uint32_t words[3] = {options, fs_map_size, FS_NEW_HELLO};
    for (int i = 0; i < 3; i++)
        if (write_u32(FS_FORKSRV_ST_FD, words[i])) die_exit(0);
    if (offer_shm) attach_fuzz_shm(1); /* offered is taken: the new handshake has no answer */
    return h;
}

void fs_server_start(void) {
    if (fs_st->server_started) return;
    fs_st->server_started = 1;
    struct fs_config *cfg = &fs_st->cfg;
    fs_map_size = fs_coverage_map_size();
    if (getenv(FS_ENV_DUMP_MAP_SIZE)) { /* asked only for the size, as AFL++'s runtime answers it */
        printf("%u\n", fs_map_size);
        fflush(stdout);
        die_exit(255);
    }
    /* Coverage counts from here, in every mode, so exec and fork runs agree. (A map
     * that does not fit is not touched: the handshake reports it.) */
    if (fs_coverage_map_fits()) fs_coverage_reset_for_run();

    int offer_shm = cfg->shm_fuzz_id >= 0 && (fs_libfuzzer_driver || cfg->input_file || cfg->input_stdin);
    int aflpp_cmplog = aflpp_cmplog_layout();
    if (aflpp_cmplog == FS_AFLPP_CMPLOG_UNKNOWN) {
        /* as AFL++'s error for an outdated CMPLOG build: every afl-fuzz reads this form */
        if (write_u32(FS_FORKSRV_ST_FD, error_word(0, FS_ERROR_OLD_CMPLOG)) == 0) die_exit(FS_ERR_EXIT_BASE + FS_ERROR_OLD_CMPLOG);
        aflpp_cmplog = FS_AFLPP_CMPLOG_NONE; /* no fuzzer: just run */
    }
    struct handshake h = speaks_new_handshake_first(aflpp_cmplog) ? speak_new_handshake(offer_shm)
                                                                  : speak_old_handshake(offer_shm, aflpp_cmplog);
    if (!h.fuzzer) { /* no fuzzer attached: just run */
        if (cfg->mode == FS_MODE_EXEC) die_with_parent(getppid());
        return;
    }
    /* snapshot runners only: forks would copy the page tables of every class's mapping */
    if (cfg->mode == FS_MODE_SNAPSHOT && cfg->asan_warmup) fs_sanitizer_heap_warm();
    fs_st->direct = cfg->mode == FS_MODE_SNAPSHOT && cfg->ctl_shm_id >= 0;
    if (cfg->ctl_shm_id >= 0) attach_control_block();
    /* shared, so that no restore rolls it back: it is what every input found so far */
    if (cfg->virgin_shm_id >= 0) fs_st->virgin = attach_segment(cfg->virgin_shm_id, "virgin map");
    if (cfg->cmplog_shm_id >= 0) fs_cmplog_log = attach_segment(cfg->cmplog_shm_id, "comparison log");
    if (cfg->input_file) {
        fs_st->input_fd = fs_move_fd_high(open(cfg->input_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        if (fs_st->input_fd < 0) FS_PWARN("cannot open the input file %s", cfg->input_file);
    }
    int n = fs_fds_list(fs_st->server_fds, FS_MAX_FDS);
    fs_st->server_fd_count = n > 0 ? n : 0;
    const char *afl_direct = getenv(FS_ENV_AFL_DIRECT);
    if (cfg->mode == FS_MODE_SNAPSHOT && !fs_st->direct && !(afl_direct && strcmp(afl_direct, "0") == 0))
        afl_direct_server_loop(h.first_cmd);
    else
        server_loop(h.first_cmd);
}
