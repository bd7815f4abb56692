/* cwd.c - an input changes the working directory. Init records getcwd(); input 'A'
 * chdir()s to /tmp (to / if the start directory is /tmp) and returns 10 (11 if chdir
 * fails); any other first byte only observes. Every input first observes: bit 1,
 * getcwd() differs from the directory at init; bit 2, a relative open of "." names
 * another directory than it did at init (compared by device and inode). An observing
 * input exits with those bits; 'A' exits 200 + the bits instead of 10 when any is set.
 * Fork mode: 'A' -> 10, anything else -> 0. A leak looks like a later input that runs
 * in /tmp.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char init_cwd[4096];
static struct stat init_dot;

static int observe(void) {
    int leak = 0;
    char cur[4096];
    if (!getcwd(cur, sizeof cur) || strcmp(cur, init_cwd) != 0) leak |= 1;
    struct stat st;
    if (stat(".", &st) != 0 || st.st_dev != init_dot.st_dev || st.st_ino != init_dot.st_ino) leak |= 2;
    return leak;
}

int main(void) {
    if (!getcwd(init_cwd, sizeof init_cwd) || stat(".", &init_dot) != 0) return 2;
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = observe();
    if (n < 1 || in[0] != 'A') return leak;
    int r = chdir(strcmp(init_cwd, "/tmp") ? "/tmp" : "/") == 0 ? 10 : 11;
    return leak ? 200 + leak : r;
}
