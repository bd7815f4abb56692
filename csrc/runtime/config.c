/* Reads the runtime's configuration from the environment, once, at start-up. */
#include <stdlib.h>
#include <string.h>

#include "fs_runtime.h"

extern int fs_afl_snapshot_build __attribute__((weak));

static const char *const backend_names[FS_BACKEND_COUNT] = {
    [FS_BACKEND_AUTO] = "auto",
    [FS_BACKEND_PAGEMAP_SCAN] = "pagemap-scan",
    [FS_BACKEND_SOFT_DIRTY] = "soft-dirty",
    [FS_BACKEND_MPROTECT] = "mprotect",
    [FS_BACKEND_FULL_COPY] = "full-copy",
};

int fs_backend_from_name(const char *name) {
    for (int i = 0; i < FS_BACKEND_COUNT; i++)
        if (strcmp(name, backend_names[i]) == 0) return i;
    return -1;
}

const char *fs_backend_name(int backend) {
    return backend >= 0 && backend < FS_BACKEND_COUNT ? backend_names[backend] : "?";
}

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long n = strtol(v, &end, 10);
    return *end ? fallback : (int)n;
}

/* How every boolean variable reads, here and in the orchestrator: set, and not "0". */
int fs_env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* FORKSERVER_BREAK_RESTORE: "1" or "memory", or a comma-separated list of the
 * pieces a restore should leave out (tests only). */
static unsigned break_restore_from_env(void) {
    static const struct { const char *name; unsigned bit; } pieces[] = {
        {"1", FS_BREAK_MEMORY}, {"memory", FS_BREAK_MEMORY}, {"process", FS_BREAK_PROCESS_STATE},
        {"signals", FS_BREAK_SIGNALS}, {"mask", FS_BREAK_MASK}, {"timers", FS_BREAK_TIMERS},
    };
    const char *v = getenv(FS_ENV_BREAK_RESTORE);
    unsigned bits = 0;
    while (v && *v) {
        size_t n = strcspn(v, ",");
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
            if (strlen(pieces[i].name) == n && strncmp(v, pieces[i].name, n) == 0) bits |= pieces[i].bit;
        v += n + (v[n] == ',');
    }
    return bits;
}

void fs_config_load(struct fs_config *cfg) {
    cfg->shm_id = env_int(FS_ENV_SHM_ID, -1);
    cfg->shm_fuzz_id = env_int(FS_ENV_SHM_FUZZ_ID, -1);
    cfg->ctl_shm_id = env_int(FS_ENV_CTL_SHM_ID, -1);
    cfg->virgin_shm_id = env_int(FS_ENV_VIRGIN_SHM_ID, -1);
    cfg->cmplog_shm_id = env_int(FS_ENV_CMPLOG_SHM_ID, -1);
    cfg->persistent = fs_env_flag(FS_ENV_PERSISTENT);
    cfg->deferred = fs_env_flag(FS_ENV_DEFER);
    cfg->verify = fs_env_flag(FS_ENV_VERIFY);
    cfg->detect_leaks = fs_env_flag(FS_ENV_DETECT_LEAKS);
    cfg->asan_warmup = !getenv(FS_ENV_ASAN_WARMUP) || fs_env_flag(FS_ENV_ASAN_WARMUP);
    cfg->break_restore = break_restore_from_env();
    const char *mode = getenv(FS_ENV_MODE);
    /* afl-fuzz exports __AFL_PERSISTENT for binaries with the persistent marker; in an
     * --afl-snapshot build that means snapshot mode */
    if (!mode && cfg->persistent && &fs_afl_snapshot_build) mode = "snapshot";
    cfg->mode = !mode ? FS_MODE_FORK
                : strcmp(mode, "snapshot") == 0 ? FS_MODE_SNAPSHOT
                : strcmp(mode, "exec") == 0 ? FS_MODE_EXEC
                : FS_MODE_FORK;
    const char *backend = getenv(FS_ENV_BACKEND);
    cfg->backend = backend ? fs_backend_from_name(backend) : FS_BACKEND_AUTO;
    const char *file = getenv(FS_ENV_INPUT_FILE);
    cfg->input_file = file && *file ? file : NULL;
    cfg->input_stdin = fs_env_flag(FS_ENV_INPUT_STDIN);
}
