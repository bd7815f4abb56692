/* Two doors, each behind an 8-byte word no mutation guesses: a fuzzer seeded with one
 * word reaches only its side, and the other side only reaches it through a peer that
 * was seeded with the other word. Each side has a few branches of its own. */
#include <string.h>
#include <unistd.h>

static volatile int sink;

static void room(const unsigned char *in, long n, int side) {
    for (long i = 8; i < n; i++) {
        if (in[i] == 'a' + side) sink += 1;
        else if (in[i] == 'z' - side) sink += 2;
        else if (in[i] > 0x80) sink += 3;
    }
}

int main(void) {
    unsigned char in[256];
    long n = read(0, in, sizeof in);
    if (n < 8) return 0;
    if (memcmp(in, "LEFTDOOR", 8) == 0) room(in, n, 0);
    else if (memcmp(in, "RIGHTDOR", 8) == 0) room(in, n, 1);
    return 0;
}
