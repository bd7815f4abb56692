/* Every constant shared by the target runtime, the host helpers and the Python
 * orchestrator. The cffi build reads this file: integer and string #defines and the
 * structs below become Python-visible; keep it to plain literals and fixed-size
 * structs (no expressions, no includes inside the struct section). */
#ifndef FS_PROTOCOL_H
#define FS_PROTOCOL_H

/* ---- AFL++ fork-server protocol (old handshake, spoken by 4.04c and later) ---- */
#define FS_FORKSRV_CTL_FD 198
#define FS_FORKSRV_ST_FD 199

#define FS_OPT_ENABLED 0x80000001
#define FS_OPT_MAPSIZE 0x40000000
#define FS_OPT_SNAPSHOT 0x20000000
#define FS_OPT_AUTODICT 0x10000000
#define FS_OPT_SHDMEM_FUZZ 0x01000000
#define FS_OPT_NEWCMPLOG 0x02000000
#define FS_OPT_MAPSIZE_MASK 0x00fffffe
#define FS_OPT_MAX_MAPSIZE 8388608
#define FS_OPT_ERROR 0xf800008f

/* error codes carried in FS_OPT_ERROR | (code << 8) */
#define FS_ERROR_MAP_SIZE 1
#define FS_ERROR_MAP_ADDR 2
#define FS_ERROR_SHM_OPEN 4
#define FS_ERROR_SHMAT 8
#define FS_ERROR_MMAP 16
/* afl-fuzz -c ran a program that cannot log comparisons in its map */
#define FS_ERROR_OLD_CMPLOG 32
/* ... the same, for AFL++'s QEMU and FRIDA loaders */
#define FS_ERROR_OLD_CMPLOG_QEMU 64

/* new handshake (AFL++ 4.20c and later): the fuzzer answers the hello with its complement */
#define FS_NEW_HELLO 0x41464c01
#define FS_NEW_HELLO_REPLY 0xbeb9b3fe
#define FS_NEW_OPT_MAPSIZE 1
#define FS_NEW_OPT_SHDMEM_FUZZ 2
#define FS_NEW_OPT_AUTODICT 2048
#define FS_NEW_ERROR 0xeffe0000

#define FS_MAP_SIZE_DEFAULT 65536
#define FS_SHM_FUZZ_MAX 1048576
#define FS_SHM_FUZZ_HEADER 4

/* wait status AFL++ sees when a persistent child stops itself: WIFSTOPPED, SIGSTOP */
#define FS_STATUS_STOPPED 4991

#define FS_ENV_SHM_ID "__AFL_SHM_ID"
#define FS_ENV_SHM_FUZZ_ID "__AFL_SHM_FUZZ_ID"
#define FS_ENV_PERSISTENT "__AFL_PERSISTENT"
#define FS_ENV_DEFER "__AFL_DEFER_FORKSRV"
#define FS_ENV_MAP_SIZE "AFL_MAP_SIZE"
/* set: print the coverage map size and exit (AFL++'s runtime does the same) */
#define FS_ENV_DUMP_MAP_SIZE "AFL_DUMP_MAP_SIZE"
/* afl-fuzz -c gives the CMPLOG instance of the target its comparison map (struct
 * cmp_map, whose layout depends on the release) */
#define FS_ENV_AFLPP_CMPLOG_SHM_ID "__AFL_CMPLOG_SHM_ID"
/* which handshake the runtime speaks first: old, new, or auto (see server.c) */
#define FS_ENV_AFL_HANDSHAKE "FORKSERVER_AFL_HANDSHAKE"

#define FS_SIG_SHM "__AFL_SHM_ID"
#define FS_SIG_PERSISTENT "##SIG_AFL_PERSISTENT##"
#define FS_SIG_DEFER "##SIG_AFL_DEFER_FORKSRV##"
/* present in every binary linked with our runtime */
#define FS_SIG_RUNTIME "##SIG_FORKSERVER_RUNTIME##"
#define FS_SIG_LIBFUZZER "##SIG_FORKSERVER_LIBFUZZER##"
#define FS_SIG_CMPLOG "##SIG_FORKSERVER_CMPLOG##"

/* ---- forkserver's own extension: snapshot mode with a direct runner channel ---- */
/* Set by the orchestrator; read once by the runtime at start-up. */
#define FS_ENV_MODE "FORKSERVER_MODE"
#define FS_ENV_BACKEND "FORKSERVER_BACKEND"
#define FS_ENV_CTL_SHM_ID "FORKSERVER_CTL_SHM_ID"
#define FS_ENV_INPUT_FILE "FORKSERVER_INPUT_FILE"
#define FS_ENV_INPUT_STDIN "FORKSERVER_INPUT_STDIN"
#define FS_ENV_VERIFY "FORKSERVER_VERIFY_RESTORE"
#define FS_ENV_DEBUG "FORKSERVER_DEBUG"
/* snapshot mode under afl-fuzz: "0" makes the runner stop itself after each input
 * (SIGSTOP, as a persistent child) instead of answering afl-fuzz directly */
#define FS_ENV_AFL_DIRECT "FORKSERVER_AFL_DIRECT"
/* the virgin map (a SysV segment of FS_OPT_MAX_MAPSIZE bytes) the runner updates with
 * each input's coverage when fs_control.check_coverage has FS_CHECK_NOVELTY */
#define FS_ENV_VIRGIN_SHM_ID "FORKSERVER_VIRGIN_SHM_ID"
/* run LeakSanitizer's check at the end of each input; leaks abort it (a crash) */
#define FS_ENV_DETECT_LEAKS "FORKSERVER_DETECT_LEAKS"
/* "0": a snapshot server of an ASan build does not map every size class before its
 * first runner (sanitizer_heap.c) */
#define FS_ENV_ASAN_WARMUP "FORKSERVER_ASAN_WARMUP"
/* the comparison log (struct fs_cmplog), a SysV segment a cmplog build logs into */
#define FS_ENV_CMPLOG_SHM_ID "FORKSERVER_CMPLOG_SHM_ID"
/* for tests only: corrupt one byte after each restore, to prove the verifier sees it */
#define FS_ENV_BREAK_RESTORE "FORKSERVER_BREAK_RESTORE"

#define FS_MODE_FORK 0
#define FS_MODE_SNAPSHOT 1
#define FS_MODE_EXEC 2

#define FS_BACKEND_AUTO 0
#define FS_BACKEND_PAGEMAP_SCAN 1
#define FS_BACKEND_SOFT_DIRTY 2
#define FS_BACKEND_MPROTECT 3
#define FS_BACKEND_FULL_COPY 4
#define FS_BACKEND_COUNT 5

/* orchestrator -> server: fork a runner, which answers FS_MSG_READY (its pid in the
 * control block) unless the server answers FS_MSG_RUNNER_DIED first. The AFL per-exec
 * word is 0 or 1; this is distinct. */
#define FS_CMD_NEW_RUNNER 1179795458
/* orchestrator -> runner: run the batch described in the control block */
#define FS_CMD_RUN 1179795459
/* runner -> orchestrator: snapshot taken, ready for FS_CMD_RUN */
#define FS_MSG_READY 1179795713
/* runner -> orchestrator: batch finished, results in the control block */
#define FS_MSG_DONE 1179795714
/* server -> orchestrator: the runner is gone; the next word is its wait status */
#define FS_MSG_RUNNER_DIED 1179795715

/* Runtime failures, reported in fs_control.error_code (and as exit code 100+code when
 * nothing else can be reported). Python maps each to a message saying what to do. */
#define FS_ERR_NONE 0
#define FS_ERR_BACKEND_UNAVAILABLE 1
#define FS_ERR_SNAPSHOT_FAILED 2
#define FS_ERR_THREAD_STARTED 3
#define FS_ERR_VERIFY_MISMATCH 4
#define FS_ERR_RESTORE_FAILED 5
#define FS_ERR_INPUT_TOO_LARGE 6
#define FS_ERR_MAPPING_UNRESTORABLE 7
#define FS_ERR_EXIT_BASE 100

#define FS_MAX_BATCH 1024
#define FS_INPUT_AREA_SIZE 16777216
#define FS_CTL_MAGIC 1179796480
#define FS_CTL_VERSION 3

/* fs_control.check_coverage bits */
#define FS_CHECK_HASH 1
#define FS_CHECK_NOVELTY 2

/* per-input result flags */
#define FS_RESULT_HASHED 1
#define FS_RESULT_VERIFY_FAILED 2
#define FS_RESULT_THREAD_STARTED 4
#define FS_RESULT_RESTORE_FAILED 8
#define FS_RESULT_NEW_BUCKET 16    /* the input reached a new hit-count bucket of a known edge */
#define FS_RESULT_NEW_EDGE 32      /* the input hit an edge no earlier input had */

struct fs_result {
    unsigned int status;       /* wait(2)-style status of this iteration */
    unsigned int flags;        /* FS_RESULT_* */
    unsigned int exec_ns;      /* harness run time */
    unsigned int restore_ns;   /* time to roll back after it */
    unsigned int dirty_pages;  /* pages restored */
    unsigned int map_hash;     /* hash of the bucketed coverage map */
};

/* One SysV shared memory segment, created by the orchestrator, named in
 * FORKSERVER_CTL_SHM_ID. Inputs live in input_area as [u32 len][bytes] records. */
struct fs_control {
    unsigned int magic;
    unsigned int version;
    unsigned int backend;          /* backend the runner actually uses */
    unsigned int batch_count;      /* inputs in this batch */
    unsigned int completed;        /* inputs finished so far (runner advances it) */
    unsigned int error_code;       /* FS_ERR_* */
    unsigned int map_size;         /* coverage map size the runtime uses */
    unsigned int check_coverage;   /* FS_CHECK_* */
    unsigned int retired;          /* runner left after `completed` inputs; reason FS_ERR_* */
    unsigned int runner_pid;
    unsigned long long runner_iterations; /* iterations since this runner started */
    unsigned long long snapshot_ns;       /* time the runner spent taking the snapshot */
    unsigned long long input_start_ns;    /* CLOCK_MONOTONIC when the current input started */
    char error_detail[256];
    struct fs_result results[1024];
    unsigned int input_offsets[1024];
    unsigned char input_area[16777216];
};

/* ---- the comparison log of `forkserver build --cmplog` builds ----
 * One SysV segment, created by the orchestrator and named in FORKSERVER_CMPLOG_SHM_ID.
 * It is shared, so a restore never rolls it back. The runtime logs only while enabled
 * is set; before each logged input the orchestrator clears every hits count. A
 * comparison's site is its call site, hashed; the first slots of a site keep the
 * operands of its first executions, and hits counts them all. */
#define FS_CMPLOG_INT_SITES 4096
#define FS_CMPLOG_INT_SLOTS 8
#define FS_CMPLOG_BYTES_SITES 1024
#define FS_CMPLOG_BYTES_SLOTS 4
#define FS_CMPLOG_BYTES_MAX 32
#define FS_CMPLOG_MAGIC 1179796736

struct fs_cmp_int {
    unsigned long long left, right;
    unsigned int size;        /* bytes: 1, 2, 4 or 8 */
    unsigned int pad;
};

struct fs_cmp_bytes {
    unsigned char left_len, right_len;   /* bytes kept of each side */
    unsigned char left[32], right[32];
};

struct fs_cmplog {
    unsigned int magic;
    unsigned int enabled;
    unsigned int int_hits[4096];
    unsigned int bytes_hits[1024];
    struct fs_cmp_int ints[4096][8];
    struct fs_cmp_bytes bytes[1024][4];
};

#endif
