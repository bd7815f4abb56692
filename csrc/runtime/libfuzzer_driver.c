/* main() for libFuzzer-style harnesses: LLVMFuzzerInitialize once, then the server
 * starts (the snapshot point) and each input goes to LLVMFuzzerTestOneInput. Inputs
 * come from the runtime (shared memory) when a fuzzer provides them, else from the
 * file named by argv[1], else stdin. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forkserver.h"
#include "fs_runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

int fs_libfuzzer_driver = 1;
__attribute__((used)) static const char libfuzzer_marker[] = FS_SIG_LIBFUZZER;
__attribute__((used)) static const char defer_marker[] = FS_SIG_DEFER;

static unsigned char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    fs_input_window_open(); /* before the snapshot: every runner inherits it */
    forkserver_init();
    const unsigned char *data;
    size_t len;
    unsigned char *owned = NULL;
    if (!fs_input_from_runtime(&data, &len)) {
        FILE *f = argc > 1 ? fopen(argv[1], "rb") : stdin;
        if (!f) {
            perror(argv[1]);
            return 2;
        }
        owned = read_all(f, &len);
        if (f != stdin) fclose(f);
        data = owned;
    }
    /* a fuzzer's input goes through the shared window (input_window.c); any other, or
     * one too long for it, in a heap copy of exactly its size, as libFuzzer passes it:
     * either way a sanitizer sees a read past the input's end */
    const unsigned char *in_window = owned ? NULL : fs_input_window_fill(data, len);
    if (in_window) {
        LLVMFuzzerTestOneInput(in_window, len);
    } else {
        unsigned char *copy = malloc(len);
        if (copy && len) memcpy(copy, data, len);
        LLVMFuzzerTestOneInput(copy ? copy : data, len);
        free(copy);
    }
    /* a fuzzer's input ends here, without exit()'s handlers and flush (global
     * destructors included), as in libFuzzer's own loop; a plain run returns */
    if (fs_st && fs_st->in_iteration && fs_in_runner()) {
        fs_check_leaks();
        fs_iteration_end(0);
    }
    if (fs_st && fs_st->in_forked_input) { /* fork mode ends the input the same way */
        fs_check_leaks();
        _exit(0);
    }
    free(owned);
    return 0;
}
