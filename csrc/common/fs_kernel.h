/* Kernel ABI that this machine's headers are too old to declare (stable since 6.7). */
#ifndef FS_KERNEL_H
#define FS_KERNEL_H

#include <linux/userfaultfd.h>
#include <stdint.h>
#include <sys/ioctl.h>

struct fs_page_region {
    uint64_t start, end, categories;
};

struct fs_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define FS_PAGEMAP_SCAN _IOWR('f', 16, struct fs_pm_scan_arg)
#define FS_PM_SCAN_WP_MATCHING (1ull << 0)
#define FS_PM_SCAN_CHECK_WPASYNC (1ull << 1)
#define FS_PAGE_IS_WPALLOWED (1ull << 0)
#define FS_PAGE_IS_WRITTEN (1ull << 1)
#define FS_PAGE_IS_PRESENT (1ull << 3)
#define FS_PAGE_IS_SWAPPED (1ull << 4)

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

#define FS_PM_SOFT_DIRTY_BIT 55

#endif
