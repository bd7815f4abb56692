/* Probes, for real, whether each dirty-page tracking mechanism works on the running
 * kernel. Shared by the target runtime (auto selection) and the orchestrator (doctor). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs_kernel.h"
#include "dirty_probe.h"

int fs_probe_pagemap_scan(char *reason, size_t len) {
    int ok = -1, uffd = -1, pm = -1;
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *mem = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(reason, len, "mmap failed: %s", strerror(errno));
        return -1;
    }
    uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) {
        snprintf(reason, len, "userfaultfd() failed: %s%s", strerror(errno),
                 errno == EPERM ? " (needs root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)" : "");
        goto out;
    }
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
    if (ioctl(uffd, UFFDIO_API, &api)) {
        snprintf(reason, len, "userfaultfd lacks async write-protect (UFFD_FEATURE_WP_ASYNC, Linux >= 6.7): %s",
                 strerror(errno));
        goto out;
    }
    struct uffdio_register reg = {.range = {(uintptr_t)mem, 4 * (uint64_t)page}, .mode = UFFDIO_REGISTER_MODE_WP};
    if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
        snprintf(reason, len, "UFFDIO_REGISTER in write-protect mode failed (CONFIG_PTE_MARKER_UFFD_WP?): %s",
                 strerror(errno));
        goto out;
    }
    struct uffdio_writeprotect wp = {.range = reg.range, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) {
        snprintf(reason, len, "UFFDIO_WRITEPROTECT failed: %s", strerror(errno));
        goto out;
    }
    mem[page + 7] = 1; /* dirty exactly the second page */
    pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0) {
        snprintf(reason, len, "cannot open /proc/self/pagemap: %s", strerror(errno));
        goto out;
    }
    struct fs_page_region vec[4];
    struct fs_pm_scan_arg arg = {
        .size = sizeof arg, .flags = FS_PM_SCAN_WP_MATCHING | FS_PM_SCAN_CHECK_WPASYNC,
        .start = (uintptr_t)mem, .end = (uintptr_t)mem + 4 * page, .vec = (uintptr_t)vec, .vec_len = 4,
        .category_mask = FS_PAGE_IS_WRITTEN, .return_mask = FS_PAGE_IS_WRITTEN};
    long n = ioctl(pm, FS_PAGEMAP_SCAN, &arg);
    if (n < 0) {
        snprintf(reason, len, "PAGEMAP_SCAN ioctl failed (needs Linux >= 6.7): %s", strerror(errno));
        goto out;
    }
    if (n != 1 || vec[0].start != (uintptr_t)mem + page || vec[0].end != (uintptr_t)mem + 2 * page) {
        snprintf(reason, len, "PAGEMAP_SCAN reported %ld ranges, expected exactly the written page", n);
        goto out;
    }
    n = ioctl(pm, FS_PAGEMAP_SCAN, &arg); /* re-protected by the first scan: nothing now */
    if (n != 0) {
        snprintf(reason, len, "PAGEMAP_SCAN did not re-protect the written page");
        goto out;
    }
    snprintf(reason, len, "userfaultfd async write-protect and PAGEMAP_SCAN work");
    ok = 0;
out:
    if (pm >= 0) close(pm);
    if (uffd >= 0) close(uffd);
    munmap(mem, 4 * page);
    return ok;
}

int fs_probe_soft_dirty(char *reason, size_t len) {
    long page = sysconf(_SC_PAGESIZE);
    int ok = -1;
    unsigned char *mem = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(reason, len, "mmap failed: %s", strerror(errno));
        return -1;
    }
    mem[0] = 1;
    int cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t entry = 0;
    if (cr < 0 || pm < 0) {
        snprintf(reason, len, "cannot open /proc/self/clear_refs or pagemap: %s", strerror(errno));
        goto out;
    }
    if (write(cr, "4", 1) != 1) {
        snprintf(reason, len, "writing 4 to /proc/self/clear_refs failed: %s", strerror(errno));
        goto out;
    }
    mem[0] = 2;
    if (pread(pm, &entry, 8, (off_t)((uintptr_t)mem / page) * 8) != 8) {
        snprintf(reason, len, "cannot read /proc/self/pagemap: %s", strerror(errno));
        goto out;
    }
    if (!(entry >> FS_PM_SOFT_DIRTY_BIT & 1)) {
        snprintf(reason, len, "the soft-dirty bit never appears after a write: the kernel is built without "
                              "CONFIG_MEM_SOFT_DIRTY");
        goto out;
    }
    snprintf(reason, len, "soft-dirty bits work");
    ok = 0;
out:
    if (cr >= 0) close(cr);
    if (pm >= 0) close(pm);
    munmap(mem, page);
    return ok;
}

int fs_probe_always(char *reason, size_t len) {
    snprintf(reason, len, "works everywhere");
    return 0;
}
