/* Kernel-side process state an input can change and a restore brings back: the
 * working directory, umask, resource limits, process name, a few prctl settings,
 * scheduling priority, CPU affinity, personality. Saved once at the snapshot; put back
 * only when the syscall watch saw the input change it; compared in full by verify. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "fs_runtime.h"


/* prctl settings with a getter: PR_SET_x (value) and PR_GET_x. The getter answers
 * through its return value, or (out_arg) by writing an int through its second argument. */
static const struct prctl_setting {
    int set, get, out_arg;
} prctl_settings[FS_PRCTL_SETTINGS] = {
    {PR_SET_DUMPABLE, PR_GET_DUMPABLE, 0},
    {PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, 1},
    {PR_SET_TIMERSLACK, PR_GET_TIMERSLACK, 0},
    {PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER, 1},
    {PR_SET_KEEPCAPS, PR_GET_KEEPCAPS, 0},
    {PR_SET_THP_DISABLE, PR_GET_THP_DISABLE, 0},
};

int fs_prctl_setting_index(long option) {
    for (int i = 0; i < FS_PRCTL_SETTINGS; i++)
        if (prctl_settings[i].set == option) return i;
    return -1;
}

static long prctl_get(const struct prctl_setting *p) {
    if (!p->out_arg) return fs_sys3(SYS_prctl, p->get, 0, 0);
    int v = 0;
    long r = fs_sys3(SYS_prctl, p->get, (long)&v, 0);
    return r < 0 ? r : v;
}

int fs_process_state_save(struct fs_process_state *ps) {
    memset(ps, 0, sizeof *ps);
    if (fs_sys3(SYS_getcwd, (long)ps->cwd, sizeof ps->cwd, 0) < 0) ps->cwd[0] = 0;
    ps->umask = (int)fs_sys3(SYS_umask, 0, 0, 0);
    fs_sys3(SYS_umask, ps->umask, 0, 0);
    for (int r = 0; r < FS_RLIMITS; r++) fs_sys4(SYS_prlimit64, 0, r, 0, (long)&ps->rlimits[r]);
    fs_sys3(SYS_prctl, PR_GET_NAME, (long)ps->comm, 0);
    for (int i = 0; i < FS_PRCTL_SETTINGS; i++) ps->prctl_values[i] = prctl_get(&prctl_settings[i]);
    ps->priority = 20 - fs_sys3(SYS_getpriority, PRIO_PROCESS, 0, 0); /* the raw call answers 20 - nice */
    ps->affinity_len = fs_sys3(SYS_sched_getaffinity, 0, sizeof ps->affinity, (long)ps->affinity);
    ps->personality = fs_sys3(SYS_personality, 0xffffffff, 0, 0);
    return 0;
}

/* The working directory goes back through a descriptor opened at the snapshot, so a
 * renamed or deleted directory does not matter. */
int fs_process_state_open_cwd(void) {
    return fs_move_fd_high((int)fs_sys4(SYS_openat, AT_FDCWD, (long)".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
}

/* Puts back each piece named in `changed` (FS_PS_* bits). Returns 0, or -1 with err set
 * when the kernel refuses (e.g. a hard limit lowered without the right to raise it). */
int fs_process_state_restore(const struct fs_process_state *ps, unsigned changed, uint32_t rlimits_changed,
                             int cwd_fd, char *err, size_t errlen) {
    if ((changed & FS_PS_CWD) && (cwd_fd < 0 || fs_sys3(SYS_fchdir, cwd_fd, 0, 0) != 0)) {
        snprintf(err, errlen, "cannot return to the working directory %s", ps->cwd);
        return -1;
    }
    if (changed & FS_PS_UMASK) fs_sys3(SYS_umask, ps->umask, 0, 0);
    if (changed & FS_PS_RLIMITS)
        for (int r = 0; r < FS_RLIMITS; r++)
            if ((rlimits_changed >> r & 1) && fs_sys4(SYS_prlimit64, 0, r, (long)&ps->rlimits[r], 0) != 0) {
                snprintf(err, errlen, "cannot restore resource limit %d", r);
                return -1;
            }
    if (changed & FS_PS_COMM) fs_sys3(SYS_prctl, PR_SET_NAME, (long)ps->comm, 0);
    if (changed & FS_PS_PRCTL)
        for (int i = 0; i < FS_PRCTL_SETTINGS; i++)
            if (ps->prctl_values[i] >= 0 && prctl_get(&prctl_settings[i]) != ps->prctl_values[i] &&
                fs_sys3(SYS_prctl, prctl_settings[i].set, ps->prctl_values[i], 0) != 0) {
                snprintf(err, errlen, "cannot restore prctl setting %d", prctl_settings[i].set);
                return -1;
            }
    if ((changed & FS_PS_PRIORITY) && fs_sys3(SYS_setpriority, PRIO_PROCESS, 0, ps->priority) != 0) {
        snprintf(err, errlen, "cannot restore the scheduling priority (nice %d)", ps->priority);
        return -1;
    }
    if ((changed & FS_PS_AFFINITY) && ps->affinity_len > 0)
        fs_sys3(SYS_sched_setaffinity, 0, ps->affinity_len, (long)ps->affinity);
    if (changed & FS_PS_PERSONALITY) fs_sys3(SYS_personality, ps->personality, 0, 0);
    return 0;
}

/* Names the first piece of `now` that differs from `snap`, or returns 0. */
int fs_process_state_compare(const struct fs_process_state *snap, const struct fs_process_state *now, char *err,
                             size_t errlen) {
    if (strcmp(snap->cwd, now->cwd) != 0)
        return snprintf(err, errlen, "working directory is %s, snapshot had %s", now->cwd, snap->cwd), -1;
    if (snap->umask != now->umask)
        return snprintf(err, errlen, "umask is %03o, snapshot had %03o", now->umask, snap->umask), -1;
    for (int r = 0; r < FS_RLIMITS; r++)
        if (memcmp(&snap->rlimits[r], &now->rlimits[r], sizeof snap->rlimits[r]) != 0)
            return snprintf(err, errlen, "resource limit %d is %llu/%llu, snapshot had %llu/%llu", r,
                            (unsigned long long)now->rlimits[r].cur, (unsigned long long)now->rlimits[r].max,
                            (unsigned long long)snap->rlimits[r].cur, (unsigned long long)snap->rlimits[r].max), -1;
    if (strncmp(snap->comm, now->comm, sizeof snap->comm) != 0)
        return snprintf(err, errlen, "process name is '%.16s', snapshot had '%.16s'", now->comm, snap->comm), -1;
    for (int i = 0; i < FS_PRCTL_SETTINGS; i++)
        if (snap->prctl_values[i] != now->prctl_values[i])
            return snprintf(err, errlen, "prctl setting %d is %ld, snapshot had %ld", prctl_settings[i].set,
                            now->prctl_values[i], snap->prctl_values[i]), -1;
    if (snap->priority != now->priority)
        return snprintf(err, errlen, "nice value is %d, snapshot had %d", now->priority, snap->priority), -1;
    if (snap->affinity_len != now->affinity_len || memcmp(snap->affinity, now->affinity, sizeof snap->affinity) != 0)
        return snprintf(err, errlen, "CPU affinity differs from the snapshot's"), -1;
    if (snap->personality != now->personality)
        return snprintf(err, errlen, "personality is %#lx, snapshot had %#lx", now->personality, snap->personality), -1;
    return 0;
}
