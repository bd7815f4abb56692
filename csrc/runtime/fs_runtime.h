/* Internal interfaces of the target runtime, shared by its modules. */
#ifndef FS_RUNTIME_H
#define FS_RUNTIME_H

#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <fenv.h>
#include <sys/time.h>

#include "fs_protocol.h"

#define FS_PAGE_SIZE 4096UL
#define FS_MAX_REGIONS 1024
#define FS_MAX_HOLES 1024
#define FS_MAX_SPARSE 1024
#define FS_MAX_HEATED 4096
#define FS_SPARSE_TRAP_MIN (64ul << 30)     /* their holes are trapped, not walked (sparse.c) */
#define FS_SPARSE_MIN (32ul << 20)           /* anonymous mappings this large are taken by what is populated */
#define FS_SPARSE_UNPROBED_MAX (16ul << 30)  /* without PAGEMAP_SCAN, the largest taken whole */
#define FS_MAX_FDS 256
#define FS_MAX_NEW_MAPPINGS 512
#define FS_DIRTY_VEC 4096
#define FS_ALT_STACK_SIZE (256 * 1024)
#define FS_MAX_CODE_RANGES 32

/* Configuration, read once from the environment at start-up. */
struct fs_config {
    int shm_id;              /* __AFL_SHM_ID, -1 if absent */
    int shm_fuzz_id;         /* __AFL_SHM_FUZZ_ID, -1 if absent */
    int ctl_shm_id;          /* FORKSERVER_CTL_SHM_ID, -1 if absent */
    int virgin_shm_id;       /* FORKSERVER_VIRGIN_SHM_ID, -1 if absent */
    int cmplog_shm_id;       /* FORKSERVER_CMPLOG_SHM_ID, -1 if absent */
    int persistent;          /* __AFL_PERSISTENT */
    int deferred;            /* __AFL_DEFER_FORKSRV */
    int mode;                /* FS_MODE_* */
    int backend;             /* FS_BACKEND_* requested */
    int verify;
    int detect_leaks;        /* LeakSanitizer's check at the end of each input */
    int asan_warmup;         /* FORKSERVER_ASAN_WARMUP, on unless set off */
    unsigned break_restore;  /* FS_BREAK_* */
    const char *input_file;  /* materialise inputs into this file */
    int input_stdin;         /* materialise inputs into stdin (a regular file) */
};

/* The kernel's signal set (64 signals) and layout of struct sigaction (glibc's differ). */
#define FS_SIGSET_SIZE sizeof(uint64_t)
struct fs_kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

/* A private writable mapping that a restore brings back. */
struct fs_region {
    uintptr_t start, end;
    int prot;
    int is_stack;
    int compare_always;      /* mprotect backend: never protected, compared in full */
    unsigned char *copy;     /* contents at snapshot time */
    unsigned char *written;  /* one byte per page: mprotect backend, 1 once written;
                              * pagemap-scan, restores since the page last differed */
    unsigned char *trap_state; /* write-trapped regions: a state byte per page, then the open list */
    int trap_writes;         /* pagemap-scan: large, its first writes trap (never walked) */
    int compared;            /* pagemap-scan: small, compared in full at every restore (never walked) */
    char name[64];
};

struct fs_saved_fd {
    int fd;
    long long offset;        /* -1: none to put back (see restorable_offset) */
};

struct fs_mapping_change { uintptr_t start, end; int prot; };

/* Unpopulated memory of a large anonymous mapping: zeros at the snapshot (sparse.c). */
struct fs_hole { uintptr_t start, end; int prot; int trapped; };
/* A granule of a trapped hole made writable, and the restore that last found it written. */
struct fs_heated { uintptr_t start, end; int prot; uint32_t written_at; };

/* Kernel-side process state a restore brings back (process_state.c). */
#define FS_RLIMITS 16          /* RLIM_NLIMITS */
#define FS_PRCTL_SETTINGS 6
#define FS_PS_CWD 1u
#define FS_PS_UMASK 2u
#define FS_PS_RLIMITS 4u
#define FS_PS_COMM 8u
#define FS_PS_PRCTL 16u
#define FS_PS_PRIORITY 32u
#define FS_PS_AFFINITY 64u
#define FS_PS_PERSONALITY 128u

struct fs_rlimit64 { uint64_t cur, max; };

struct fs_process_state {
    char cwd[1024];
    int umask;
    struct fs_rlimit64 rlimits[FS_RLIMITS];
    char comm[16];
    long prctl_values[FS_PRCTL_SETTINGS];
    int priority;                /* nice value */
    long affinity_len;
    unsigned char affinity[128];
    unsigned long personality;
};

/* What FORKSERVER_BREAK_RESTORE leaves out of every restore, to prove the verifier
 * sees it (tests only). */
#define FS_BREAK_MEMORY 1u
#define FS_BREAK_PROCESS_STATE 2u
#define FS_BREAK_SIGNALS 4u
#define FS_BREAK_MASK 8u
#define FS_BREAK_TIMERS 16u

/* One line of /proc/self/maps. */
struct fs_map_entry { uintptr_t start, end; int prot; int priv; char name[64]; };
#define FS_MAX_MAP_ENTRIES 1024

/* Snapshot state. Lives in its own mapping, which no restore touches. */
struct fs_snapshot {
    int backend;
    struct fs_region regions[FS_MAX_REGIONS];
    int region_count;
    struct fs_map_entry layout[FS_MAX_MAP_ENTRIES]; /* every mapping at snapshot time */
    int layout_count;
    struct fs_mapping_change excluded[8];  /* the runtime's own mappings */
    int excluded_count;
    uintptr_t brk_start;     /* program break at snapshot */
    struct fs_saved_fd fds[FS_MAX_FDS];   /* sorted by fd */
    int fd_count;
    struct fs_kernel_sigaction handlers[65]; /* as the kernel has them (ours for SIGSYS/SIGSEGV/SIGBUS) */
    /* The runtime's own handlers (SIGSYS always, SIGSEGV and SIGBUS when owns_faults) are invisible:
     * the program sees and sets these views instead; a restore puts the snapshot's back. */
    struct fs_kernel_sigaction sigsys_view, sigsys_view_snap;
    struct fs_kernel_sigaction segv_view, segv_view_snap;
    struct fs_kernel_sigaction bus_view, bus_view_snap;
    uint64_t sigmask;            /* blocked signals at the snapshot, as the kernel has them */
    uint64_t hidden_blocked;     /* of the signals the kernel must never block, those the program believes blocked */
    uint64_t hidden_blocked_snap;
    stack_t altstack_view, altstack_view_snap; /* the program's sigaltstack (the runtime's is in use) */
    struct fs_process_state process_state;
    unsigned process_state_changed; /* FS_PS_* seen changed during this input */
    uint32_t rlimits_changed;    /* bit n: resource n */
    int cwd_fd;                  /* the snapshot's working directory */
    struct fs_mapping_change code_ranges[FS_MAX_CODE_RANGES]; /* where the watched program's code lies */
    int code_range_count;
    struct itimerval timers[3];
    sigjmp_buf resume;
    fenv_t fenv;
    /* mapping changes seen since the snapshot (filled by the syscall watch) */
    struct fs_mapping_change new_mappings[FS_MAX_NEW_MAPPINGS];
    int new_mapping_count;
    struct fs_mapping_change reprotected[FS_MAX_NEW_MAPPINGS];
    int reprotected_count;
    struct fs_mapping_change discarded[FS_MAX_NEW_MAPPINGS];       /* MADV_DONTNEED and kin on regions */
    int discarded_count;
    struct fs_mapping_change reserved_changed[FS_MAX_NEW_MAPPINGS]; /* parts of reservations (re)mapped */
    int reserved_changed_count;
    /* unpopulated parts of large anonymous mappings: zeros at the snapshot (sparse.c) */
    struct fs_hole holes[FS_MAX_HOLES];
    int hole_count;
    struct fs_heated heated[FS_MAX_HEATED]; /* writable granules of trapped holes */
    int heated_count;
    int heated_overflow;
    struct fs_mapping_change sparse[FS_MAX_SPARSE]; /* walked at each restore: untrapped mappings, neighbours merged */
    int sparse_count;
    int sparse_fd;               /* /proc/self/pagemap for the probes */
    int has_trapped_holes;
    int new_fds[FS_MAX_FDS];     /* fds created since the snapshot (the syscall watch logs them) */
    int new_fd_count;
    int fds_need_sweep;          /* an fd appeared in a way not logged: close every non-snapshot fd */
    uint64_t changed_signals;    /* bit n: handler of signal n changed */
    int timers_changed;
    int retire_reason;           /* FS_ERR_* that makes the runner retire after this input */
    char retire_detail[128];
    int threads_started;
    uint64_t dirty_pages;        /* pages restored by the last restore */
    /* backend scratch */
    int uffd, pagemap_fd;
    int trap_uffd;               /* pagemap-scan's large regions: sync write-protect, SIGBUS */
    struct fs_region *opened_region; /* pagemap-scan: the region the last kernel write opened... */
    uint32_t opened_before_write;    /* ...and its open count before it, plus 1 (0: none) */
    void *scan_vec;              /* struct page_region[FS_DIRTY_VEC] */
    uintptr_t *dirty_list;       /* mprotect backend: pages written this iteration */
    size_t dirty_count, dirty_cap;
    size_t dirty_count_before_write; /* mprotect backend: the list length before a kernel write */
    uintptr_t brk_now;           /* program break as the watch last saw it */
    const struct fs_tracker *tracker;
    int track_kernel_writes;     /* announce kernel writes (mprotect backend, write-trapped regions) */
    int owns_faults;             /* our SIGSEGV and SIGBUS handlers are installed */
    uint32_t restore_count;      /* restores since the snapshot, from 1 (counted at the end of each) */
    int watch_fds;               /* the watch logs new fds */
    struct fs_mapping_change scan_ranges[FS_MAX_REGIONS]; /* pagemap-scan: one walk each */
    int scan_range_count;
    uintptr_t rseq_start, rseq_end; /* the kernel's rseq area: it writes there, we must not */
};

/* Everything the runtime mutates after init. */
struct fs_state {
    struct fs_config cfg;
    int server_started;
    int is_runner;              /* this process runs inputs in snapshot mode */
    long runner_pid;            /* the runner's pid: its children inherit is_runner, not the pid */
    int ctl_fd, st_fd;          /* the runner's protocol pipes, moved out of the program's sight */
    int direct;                 /* runner talks to our orchestrator over the control block */
    volatile uint32_t *afl_exchange; /* runner answers afl-fuzz itself: how far an input's exchange got (FS_EXCHANGE_*) */
    int in_iteration;
    int in_forked_input;        /* fork mode: this process is the child running one input */
    int shm_fuzz_accepted;
    unsigned long long iteration;
    uint64_t iteration_start_ns;
    struct fs_control *ctl;
    unsigned char *virgin;         /* the orchestrator's virgin map, or NULL */
    const unsigned char *fuzz_shm; /* AFL test-case buffer */
    const unsigned char *input;    /* current input (snapshot batch or shm) */
    size_t input_len;
    int input_fd;               /* writable fd for materialising @@ inputs */
    size_t materialised_len;    /* length of the input last written there */
    unsigned batch_index;
    char *alt_stack;            /* restore runs here, off the stack it restores */
    char *signal_stack;
    int pending_status;
    struct fs_snapshot snap;
    char maps_buf[1 << 16];
    struct fs_map_entry maps_scratch[FS_MAX_MAP_ENTRIES];
    struct fs_saved_fd fds_scratch[FS_MAX_FDS];
    struct fs_process_state process_state_scratch;
    struct fs_saved_fd server_fds[FS_MAX_FDS]; /* fork mode: the server's fds and offsets */
    int server_fd_count;
    struct fs_mapping_change own_memory[4]; /* the runtime's own mappings: no restore touches them */
    int own_memory_count;
};

extern struct fs_state *fs_st;
extern unsigned char *fs_map;
extern uint32_t fs_map_size;
extern int fs_libfuzzer_driver;      /* set by the libFuzzer driver */
extern volatile unsigned char fs_break_target;

/* libc_direct.c: the C library's functions, past a sanitizer's interceptors */
struct fs_libc {
    void *(*memcpy)(void *, const void *, size_t);
    int (*memcmp)(const void *, const void *, size_t);
    void *(*memset)(void *, int, size_t);
    int (*sigaction)(int, const struct sigaction *, struct sigaction *);
    void (*siglongjmp)(sigjmp_buf, int) __attribute__((noreturn));
};
extern struct fs_libc fs_libc;
void fs_libc_init(void);

/* config.c */
void fs_config_load(struct fs_config *cfg);
int fs_env_flag(const char *name);
int fs_backend_from_name(const char *name);
const char *fs_backend_name(int backend);

/* coverage.c */
void fs_coverage_init(void);
uint32_t fs_coverage_map_size(void);
void fs_coverage_reset_for_run(void);
uint32_t fs_coverage_hash(void);
int fs_coverage_novelty(unsigned char *virgin);

/* runtime.c */
void fs_runtime_init(void);
/* Each part of the runtime that maps memory for itself registers it here. */
void fs_own_memory_add(const void *start, size_t len);
void fs_own_memory_moved(const void *old, const void *start, size_t len);
uint64_t fs_now_ns(void);
int fs_move_fd_high(int fd);
void fs_check_leaks(void);
void fs_sanitizer_heap_warm(void);

/* the comparison log, attached by the server; only cmplog builds write it (cmplog.c) */
extern struct fs_cmplog *fs_cmplog_log;

/* how far a runner that answers afl-fuzz itself got with the current input */
enum { FS_EXCHANGE_CMD_READ, FS_EXCHANGE_PID_SENT, FS_EXCHANGE_PID_AHEAD };
#define FS_EXCHANGE_NO_CMD 0xffffffffu /* afl-fuzz's commands are 0 and 1 */

/* afl-fuzz -c's comparison map (cmplog_aflpp.c, cmplog builds only): its layouts */
enum { FS_AFLPP_CMPLOG_UNKNOWN = -1, FS_AFLPP_CMPLOG_NONE, FS_AFLPP_CMPLOG_404, FS_AFLPP_CMPLOG_420, FS_AFLPP_CMPLOG_422 };
extern unsigned char *fs_aflpp_cmp_map;
/* attaches __AFL_CMPLOG_SHM_ID's map; returns its layout (NONE: no such variable) */
int fs_aflpp_cmplog_attach(void) __attribute__((weak));
void fs_aflpp_log_int(uintptr_t site, uint64_t left, uint64_t right, unsigned size, unsigned attribute);
void fs_aflpp_log_bytes(uintptr_t site, const unsigned char *left, size_t left_len, const unsigned char *right,
                        size_t right_len, int string);

/* server.c */
void fs_server_start(void);
void fs_iteration_end(int wait_status) __attribute__((noreturn));
int fs_input_from_runtime(const unsigned char **data, size_t *len);
/* input_window.c: the shared window a libFuzzer harness's fuzzed inputs are passed in */
void fs_input_window_open(void);
const unsigned char *fs_input_window_fill(const unsigned char *data, size_t len);

/* sparse.c */
int fs_sparse_candidate(const struct fs_map_entry *e, uintptr_t start, uintptr_t end);
int fs_sparse_populated(uintptr_t start, uintptr_t end, struct fs_mapping_change *out, int max);
int fs_sparse_add_hole(uintptr_t start, uintptr_t end, int prot, int trapped);
int fs_sparse_add_mapping(uintptr_t start, uintptr_t end);
int fs_sparse_trapped(uintptr_t start, uintptr_t end);
const struct fs_hole *fs_sparse_hole_at(uintptr_t addr);
int fs_sparse_arm(char *err, size_t errlen);
int fs_sparse_handle_fault(uintptr_t addr);
int fs_sparse_in_trapped_hole(uintptr_t addr);
void fs_sparse_note_write(uintptr_t addr, size_t len);
void fs_sparse_reset_holes(void);
int fs_sparse_verify_holes(char *err, size_t errlen);

/* snapshot.c */
int fs_snapshot_take(int backend, char *err, size_t errlen);
int fs_snapshot_restore(char *err, size_t errlen);
int fs_snapshot_verify(char *err, size_t errlen);
struct fs_region *fs_snapshot_find_region(uintptr_t addr);
/* Copies one page back from the snapshot: 1 when it differed, 0 when it already matched,
 * -1 when it lies in no region. */
int fs_snapshot_restore_page(uintptr_t page);
int fs_snapshot_restore_page_in(struct fs_region *r, uintptr_t page);
int fs_snapshot_overlaps_layout(uintptr_t start, uintptr_t end);
/* Index of the snapshot's mapping (layout entry) that holds addr, or -1. */
int fs_snapshot_layout_index(uintptr_t addr);
int fs_snapshot_fd_index(long fd);
int fs_fds_list(struct fs_saved_fd *out, int max);
void fs_snapshot_retire(int reason, const char *fmt, ...);
void fs_snapshot_take_over_signal(int sig, void (*handler)(int, siginfo_t *, void *),
                                  struct fs_kernel_sigaction *view, struct fs_kernel_sigaction *view_snap);

/* process_state.c */
int fs_process_state_save(struct fs_process_state *ps);
int fs_process_state_open_cwd(void);
int fs_process_state_restore(const struct fs_process_state *ps, unsigned changed, uint32_t rlimits_changed,
                             int cwd_fd, char *err, size_t errlen);
int fs_process_state_compare(const struct fs_process_state *snap, const struct fs_process_state *now, char *err,
                             size_t errlen);
int fs_prctl_setting_index(long option);

/* maps.c */
int fs_maps_read(struct fs_map_entry *out, int max);

/* syscall_watch.c */
int fs_syscall_watch_install(int track_kernel_writes, char *err, size_t errlen);
void fs_note_thread_start(void);
/* The signals the kernel must never block in the runner (a forced SIGSYS, SIGSEGV or
 * SIGBUS would kill it): SIGSYS always, SIGSEGV and SIGBUS while the runtime owns them. */
uint64_t fs_hidden_signals(void);
/* 1 in the runner, 0 in the processes it starts (they inherit its memory, not its role) */
int fs_in_runner(void);
int fs_shares_runner_memory(void);
long fs_raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
/* Shorthands for the runtime's own calls (the watch lets fs_raw_syscall through). */
static inline long fs_sys3(long nr, long a1, long a2, long a3) { return fs_raw_syscall(nr, a1, a2, a3, 0, 0, 0); }
static inline long fs_sys4(long nr, long a1, long a2, long a3, long a4) {
    return fs_raw_syscall(nr, a1, a2, a3, a4, 0, 0);
}

/* track.c (the registry) and track_*.c (one backend each) */
struct fs_tracker {
    const char *name;
    int (*probe)(char *reason, size_t len);
    int (*start)(struct fs_snapshot *s, char *err, size_t errlen);
    /* Calls fs_snapshot_restore_page for every page written since the last call, then
     * re-arms tracking. */
    int (*collect)(struct fs_snapshot *s);
    /* The kernel is about to write [addr, addr+len). */
    void (*note_kernel_write)(struct fs_snapshot *s, uintptr_t addr, size_t len);
    /* After a note_kernel_write: the kernel wrote only below written_end. */
    void (*kernel_write_done)(struct fs_snapshot *s, uintptr_t written_end);
    /* mprotect backend only: the harness changes protection of [start, end). */
    void (*note_reprotect)(struct fs_snapshot *s, uintptr_t start, uintptr_t end);
    /* A write fault on a page the backend protected: 1 when handled. */
    int (*handle_fault)(struct fs_snapshot *s, uintptr_t addr);
};
const struct fs_tracker *fs_tracker_get(int backend);
/* Bookkeeping bytes a region needs (page marks, write-trap state), and where they go. */
size_t fs_tracker_marks_size(const struct fs_region *r);
void fs_tracker_place_marks(struct fs_region *r, unsigned char *marks);
/* 0 for write-trapped pages never opened (no copy taken: they were protected throughout). */
int fs_tracker_page_has_copy(struct fs_snapshot *s, struct fs_region *r, uintptr_t page);
int fs_tracker_auto(char *reason, size_t len);

void fs_call_on_stack(void *stack_top, void (*fn)(void)) __attribute__((noreturn));

#endif
