/* ini_parser_persistent.c - AFL++ persistent-mode driver for harnesses/ini_parser.c, the
 * "no reset at all" baseline that our snapshot mode is compared with under afl-fuzz.
 *
 * Build with afl-clang-fast together with the harness (scripts/bench_afl.py does this):
 *   afl-clang-fast -O2 -I scripts/afl harnesses/ini_parser.c \
 *       scripts/afl/ini_parser_persistent.c -o ini_parser.afl-persistent
 *
 * The fork server starts after LLVMFuzzerInitialize (deferred), then each input arrives
 * in AFL++'s shared-memory test-case buffer and goes to LLVMFuzzerTestOneInput; the
 * process is reused for 10000 inputs before afl-fuzz forks a fresh one. Without
 * afl-fuzz, __AFL_LOOP runs once on the input read from argv[1] or stdin. With
 * -DHEAP_COPY each input is passed in a heap copy of its exact size, as libFuzzer does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef __AFL_FUZZ_TESTCASE_LEN
#error "build this file with afl-clang-fast (it uses AFL++'s persistent-mode macros)"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

__AFL_FUZZ_INIT();

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    __AFL_INIT();
    /* must come after __AFL_INIT: the buffer is the shared memory afl-fuzz provides */
    unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(10000)) {
        size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
#ifdef HEAP_COPY
        /* as libFuzzer (and forkserver's driver) pass it: a heap copy of exactly the
         * input's size, so that ASan sees a read past its end */
        unsigned char *copy = malloc(len);
        if (copy && len) memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy ? copy : buf, len);
        free(copy);
#else
        LLVMFuzzerTestOneInput(buf, len);
#endif
    }
    return 0;
}
