/* The C library's own memory and signal functions, found past any interposer. A
 * sanitizer's memcpy and memcmp check the ranges they touch, and the runtime copies
 * and compares whole pages of the program's memory, redzones included; ASan's
 * sigaction may also refuse handlers for the signals it claims, and its siglongjmp
 * would take the runtime's own stack for the program's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "fs_runtime.h"

struct fs_libc fs_libc = {memcpy, memcmp, memset, sigaction, siglongjmp};

void fs_libc_init(void) {
    void *p;
    if ((p = dlsym(RTLD_NEXT, "memcpy"))) fs_libc.memcpy = (void *(*)(void *, const void *, size_t))p;
    if ((p = dlsym(RTLD_NEXT, "memcmp"))) fs_libc.memcmp = (int (*)(const void *, const void *, size_t))p;
    if ((p = dlsym(RTLD_NEXT, "memset"))) fs_libc.memset = (void *(*)(void *, int, size_t))p;
    if ((p = dlsym(RTLD_NEXT, "sigaction")))
        fs_libc.sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))p;
    if ((p = dlsym(RTLD_NEXT, "siglongjmp"))) fs_libc.siglongjmp = (void (*)(sigjmp_buf, int))p;
}
