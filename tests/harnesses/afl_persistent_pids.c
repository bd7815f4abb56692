/* An AFL++ persistent-mode target (build with afl-clang-fast) that appends its pid to
 * the file named by PID_LOG once per input: fork mode must show one process per input,
 * persistent mode one process for many. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__AFL_FUZZ_INIT();

int main(void) {
    __AFL_INIT();
    unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(1000)) {
        int len = __AFL_FUZZ_TESTCASE_LEN;
        FILE *f = fopen(getenv("PID_LOG"), "a");
        if (!f) return 1;
        fprintf(f, "%d %d\n", (int)getpid(), len > 0 ? buf[0] : -1);
        fclose(f);
    }
    return 0;
}
