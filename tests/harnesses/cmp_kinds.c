/* cmp_kinds.c - one comparison of each kind the comparison log records, every one with
 * an operand taken from the input:
 *   bytes 0, 1-2, 3-6, 7-14: a u8, u16, u32 and u64 (little endian) compared with
 *   0x42, 0x1234, 0xdeadbeef and 0x0123456789abcdef; byte 15: a switch over 'x', 'y', 'z';
 *   from byte 16: a string, passed to memcmp ("MEMCMP", 6), bcmp ("BCMP", 4),
 *   strcmp ("strcmp-key"), strncmp ("strncmp", 7), strcasecmp ("CaseCmp"),
 *   strncasecmp ("NCASE", 5), memmem ("needle") and strstr ("straw").
 * It prints the sign of each string function's result (1/0 for the searches), so that a
 * cmplog build, whose string functions are its own, can be checked against the C
 * library's answers; the exit status is the number of integer comparisons that held. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int sign(int v) { return (v > 0) - (v < 0); }

int main(void) {
    unsigned char in[256] = {0};
    ssize_t n = read(0, in, sizeof in - 1);
    if (n < 0) return 2;
    uint8_t a8 = in[0];
    uint16_t a16;
    uint32_t a32;
    uint64_t a64;
    memcpy(&a16, in + 1, sizeof a16);
    memcpy(&a32, in + 3, sizeof a32);
    memcpy(&a64, in + 7, sizeof a64);
    volatile int held = 0;
    if (a8 == 0x42) held++;
    if (a16 == 0x1234) held++;
    if (a32 == 0xdeadbeefu) held++;
    if (a64 == 0x0123456789abcdefull) held++;
    switch (in[15]) {
    case 'x': held += 10; break;
    case 'y': held += 20; break;
    case 'z': held += 30; break;
    default: break;
    }
    const char *s = (const char *)in + 16;
    size_t len = strlen(s);
    printf("%d %d %d %d %d %d %d %d\n", sign(memcmp(s, "MEMCMP", 6)), sign(bcmp(s, "BCMP", 4)) != 0,
           sign(strcmp(s, "strcmp-key")), sign(strncmp(s, "strncmp", 7)), sign(strcasecmp(s, "CaseCmp")),
           sign(strncasecmp(s, "NCASE", 5)), memmem(s, len, "needle", 6) != NULL, strstr(s, "straw") != NULL);
    return held;
}
