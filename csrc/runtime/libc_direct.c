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

/* From the C library itself: with gcc, ASan is a shared library loaded before it, so
 * RTLD_NEXT would find the interceptors. */
static void *libc_symbol(void *libc, const char *name) {
    void *p = libc ? dlsym(libc, name) : NULL;
    return p ? p : dlsym(RTLD_NEXT, name);
}

void fs_libc_init(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD), *p;
    if ((p = libc_symbol(libc, "memcpy"))) fs_libc.memcpy = (void *(*)(void *, const void *, size_t))p;
    if ((p = libc_symbol(libc, "memcmp"))) fs_libc.memcmp = (int (*)(const void *, const void *, size_t))p;
    if ((p = libc_symbol(libc, "memset"))) fs_libc.memset = (void *(*)(void *, int, size_t))p;
    if ((p = libc_symbol(libc, "sigaction")))
        fs_libc.sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))p;
    if ((p = libc_symbol(libc, "siglongjmp"))) fs_libc.siglongjmp = (void (*)(sigjmp_buf, int))p;
    if (libc) dlclose(libc);
}
