/* One 4-byte magic value guards a crash: coverage alone must guess all 32 bits at
 * once, while comparison feedback reads the value off the comparison. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    unsigned char in[64] = {0};
    if (read(0, in, sizeof in) < 4) return 0;
    uint32_t word;
    memcpy(&word, in, 4);
    if (word == 0x4d5a9000u) abort();
    return 0;
}
