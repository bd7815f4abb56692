/* A target with a 16 MiB coverage map, as a very large program would have: a
 * constructor hands the coverage runtime (AFL++'s or ours) almost 16 Mi more guards. The
 * input "Z" hits the last of them, the map's last byte. */
#include <stdint.h>
#include <unistd.h>

#define EXTRA_GUARDS ((16u << 20) - 64) /* with the program's own, 16 MiB at most */

void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop);
void __sanitizer_cov_trace_pc_guard(uint32_t *guard);

static uint32_t extra_guards[EXTRA_GUARDS];

/* before AFL++'s runtime starts its fork server (a default-priority constructor) */
__attribute__((constructor(200))) static void add_guards(void) {
    __sanitizer_cov_trace_pc_guard_init(extra_guards, extra_guards + EXTRA_GUARDS);
}

int main(void) {
    char c = 0;
    if (read(0, &c, 1) == 1 && c == 'Z') __sanitizer_cov_trace_pc_guard(&extra_guards[EXTRA_GUARDS - 1]);
    return 0;
}
