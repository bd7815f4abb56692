/* A stand-in for an AFL++-instrumented target: its fork server speaks the handshake
 * FAKE_HANDSHAKE names, word for word as AFL++'s runtimes send it (AFLPP_PROTOCOL.md,
 * captured from 4.04c and 4.22a). Build it with a plain compiler.
 *   old        ENABLED | MAPSIZE | size bits                          (4.04c)
 *   classic    0: no options, as 4.04c sends for a map over 8 MiB
 *   new        hello; the complement back; options MAPSIZE; size; hello   (4.22a)
 *   new-dict   as new, options MAPSIZE | AUTODICT, then the dictionary's length and
 *              bytes before the closing hello                         (4.22a, LTO)
 *   error-old  ENABLED-style error word: 0xf800008f | FAKE_ERROR << 8
 *   error-new  0xeffe0000 | FAKE_ERROR, in place of any hello         (4.22a)
 * FAKE_MAP_SIZE is the map size it has (default 64). As AFL++'s runtime does, it sends
 * FS_ERROR_MAP_SIZE when AFL_MAP_SIZE is smaller than that, and prints the size for
 * AFL_DUMP_MAP_SIZE. Each run sets map[0] and map[size - 1], and exits 7 if its
 * input (stdin) starts with 'x', else 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL_FD 198
#define ST_FD 199
#define NEW_HELLO 0x41464c01u

static void put(uint32_t v) {
    if (write(ST_FD, &v, 4) != 4) _exit(1);
}

static uint32_t get(void) {
    uint32_t v;
    if (read(CTL_FD, &v, 4) != 4) _exit(1);
    return v;
}

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int main(void) {
    const char *kind = env_or("FAKE_HANDSHAKE", "old");
    uint32_t size = (uint32_t)strtoul(env_or("FAKE_MAP_SIZE", "64"), NULL, 0);
    uint32_t error = (uint32_t)strtoul(env_or("FAKE_ERROR", "1"), NULL, 0);
    uint32_t given = (uint32_t)strtoul(env_or("AFL_MAP_SIZE", "65536"), NULL, 0);
    static const char dict[] = "\x04" "GATE" "\x03" "key"; /* [u8 len][bytes] entries */
    const uint32_t dict_len = sizeof dict - 1;

    if (getenv("AFL_DUMP_MAP_SIZE")) {
        printf("%u\n", size);
        return 255;
    }
    int old_style = strcmp(kind, "old") == 0 || strcmp(kind, "classic") == 0;
    if (strcmp(kind, "error-old") == 0 || (old_style && size > given)) {
        put(0xf800008fu | (strcmp(kind, "error-old") == 0 ? error : 1) << 8);
        return 1;
    }
    if (strcmp(kind, "error-new") == 0) {
        put(0xeffe0000u | error);
        return 1;
    }
    const char *id = getenv("__AFL_SHM_ID");
    unsigned char *map = id ? shmat(atoi(id), NULL, 0) : NULL;
    if (map == (void *)-1) return 2;

    if (strcmp(kind, "old") == 0) {
        put(0x80000001u | 0x40000000u | ((size - 1) << 1));
    } else if (strcmp(kind, "classic") == 0) {
        put(0);
    } else {
        int with_dict = strcmp(kind, "new-dict") == 0;
        put(NEW_HELLO);
        if (get() != (NEW_HELLO ^ 0xffffffffu)) return 3;
        put(1u | (with_dict ? 0x800u : 0));
        put(size);
        if (with_dict) {
            put(dict_len);
            if (write(ST_FD, dict, dict_len) != (ssize_t)dict_len) return 1;
        }
        put(NEW_HELLO);
    }
    for (;;) {
        get(); /* was_killed */
        pid_t pid = fork();
        if (pid == 0) {
            close(CTL_FD);
            close(ST_FD);
            unsigned char c = 0;
            if (pread(0, &c, 1, 0) != 1) c = 0;
            if (map) {
                map[0] = 1;
                map[size - 1] = 1;
            }
            _exit(c == 'x' ? 7 : 0);
        }
        put((uint32_t)pid);
        int status;
        waitpid(pid, &status, 0);
        put((uint32_t)status);
    }
}
