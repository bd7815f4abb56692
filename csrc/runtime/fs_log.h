/* Diagnostics for the target runtime: every message names the function, line and errno. */
#ifndef FS_LOG_H
#define FS_LOG_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

extern int fs_debug_enabled;

#define FS_WARN(fmt, ...)                                                          \
    fprintf(stderr, "[forkserver] %s:%d: " fmt "\n", __func__, __LINE__, ##__VA_ARGS__)

#define FS_PWARN(fmt, ...)                                                         \
    fprintf(stderr, "[forkserver] %s:%d: " fmt ": %s\n", __func__, __LINE__,       \
            ##__VA_ARGS__, strerror(errno))

#define FS_DEBUG(fmt, ...)                                                         \
    do {                                                                           \
        if (fs_debug_enabled) FS_WARN(fmt, ##__VA_ARGS__);                         \
    } while (0)

#endif
