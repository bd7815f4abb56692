/* chatty.c - writes 2 KiB to stderr at every input, and does nothing else: at fuzzing
 * rates that is ~100 MB a second, which must not pile up in the target's stderr file
 * (it lives in the run directory, on tmpfs where one is available). */
#include "forkserver.h"

#include <string.h>
#include <unistd.h>

int main(void)
{
    static char line[2048];
    unsigned char buf[64];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    (void)read(0, buf, sizeof buf);
    (void)!write(2, line, sizeof line);
    return 0;
}
