/* magic_gates.c - four comparisons that coverage alone cannot get past, each guarding
 * the next, with a crash behind the last: what comparison feedback (input-to-state) is
 * for. A fuzzer without it must guess 4 + 8 bytes of magic at once; one that logs the
 * operands reads them off the comparisons.
 *
 * Input (stdin; at most 256 bytes are read):
 *   bytes 0-3    little-endian u32 == 0x4d5a9000      (a 32-bit magic)
 *   bytes 4-11   little-endian u64 == 0xf00dcafe5eed1e55 (a 64-bit magic)
 *   bytes 12-17  memcmp(.., "FZ-GO!", 6) == 0           (a 6-byte token)
 *   bytes 18-    strcmp(.., "snapshot") == 0           (a keyword, NUL-terminated)
 *   all four     abort() (SIGABRT) - the planted crash
 * Exit codes tell how far an input got: 0 none, 1-3 that many gates passed.
 */
#include "forkserver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INPUT 256

int main(void)
{
    FORKSERVER_INIT();
    unsigned char in[MAX_INPUT + 1];
    ssize_t n = read(0, in, MAX_INPUT);
    if (n < 0)
        n = 0;
    in[n] = 0;
    uint32_t magic32;
    uint64_t magic64;
    if (n < 4)
        return 0;
    memcpy(&magic32, in, 4);
    if (magic32 != 0x4d5a9000u)
        return 0;
    if (n < 12)
        return 1;
    memcpy(&magic64, in + 4, 8);
    if (magic64 != 0xf00dcafe5eed1e55ull)
        return 1;
    if (n < 18 || memcmp(in + 12, "FZ-GO!", 6) != 0)
        return 2;
    if (strcmp((const char *)in + 18, "snapshot") != 0)
        return 3;
    abort();
}
