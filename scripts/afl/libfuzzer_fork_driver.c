/* libfuzzer_fork_driver.c - AFL++ fork-server driver for libFuzzer-style harnesses: one
 * input per process, as our libFuzzer driver runs in fork mode. For the ASan builds of
 * scripts/bench_asan.py:
 *   afl-clang-fast -O2 -fsanitize=address harnesses/ini_parser.c \
 *       scripts/afl/libfuzzer_fork_driver.c -o ini_parser.asan.afl
 *
 * The fork server starts after LLVMFuzzerInitialize (deferred); the input comes from
 * AFL++'s shared-memory test-case buffer (stdin without afl-fuzz) and goes to
 * LLVMFuzzerTestOneInput in a heap copy of its exact size, as libFuzzer passes it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef __AFL_FUZZ_TESTCASE_LEN
#error "build this file with afl-clang-fast (it uses AFL++'s shared-memory test-case macros)"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

__AFL_FUZZ_INIT();

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    __AFL_INIT();
    const unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    size_t len = __AFL_FUZZ_TESTCASE_LEN;
    unsigned char *copy = malloc(len);
    if (copy && len) memcpy(copy, buf, len);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}
