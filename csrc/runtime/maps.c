/* Parses /proc/self/maps without allocating, so it is safe between fork and snapshot. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs_runtime.h"

static uintptr_t parse_hex(const char **p) {
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

static void parse_line(const char *line, struct fs_map_entry *e) {
    const char *p = line;
    e->start = parse_hex(&p);
    p++; /* '-' */
    e->end = parse_hex(&p);
    p++; /* ' ' */
    e->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) | (p[2] == 'x' ? PROT_EXEC : 0);
    e->priv = p[3] == 'p';
    /* skip perms, offset, dev, inode to the optional path */
    for (int field = 0; field < 4 && *p; field++) {
        while (*p && *p != ' ') p++;
        while (*p == ' ') p++;
    }
    size_t n = strlen(p);
    if (n >= sizeof e->name) p += n - (sizeof e->name - 1);
    strncpy(e->name, p, sizeof e->name - 1);
    e->name[sizeof e->name - 1] = 0;
}

int fs_maps_read(struct fs_map_entry *out, int max) {
    int fd = (int)fs_raw_syscall(SYS_openat, AT_FDCWD, (long)"/proc/self/maps", O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0) return -1;
    char *buf = fs_st->maps_buf; /* not static storage: that would be restored memory */
    char line[512];
    size_t line_len = 0;
    int count = 0;
    for (;;) {
        long n = fs_raw_syscall(SYS_read, fd, (long)buf, sizeof fs_st->maps_buf, 0, 0, 0);
        if (n <= 0) break;
        for (long i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (line_len < sizeof line - 1) line[line_len++] = buf[i];
                continue;
            }
            line[line_len] = 0;
            line_len = 0;
            if (count < max) parse_line(line, &out[count]);
            count++;
        }
    }
    fs_raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
    return count > max ? max : count;
}
