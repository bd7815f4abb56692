/* maze_persistent.c - AFL++ persistent-mode driver for harnesses/maze.c: the "no reset at
 * all" baseline for a program that reads its input from stdin.
 *
 * Build with afl-clang-fast, the harness's main renamed (scripts/bench_fuzz.py does this):
 *   afl-clang-fast -O2 -I scripts/afl -Dmain=maze_main -c harnesses/maze.c -o maze.o
 *   afl-clang-fast -O2 scripts/afl/maze_persistent.c maze.o -o maze.afl-persistent
 *
 * afl-fuzz writes each input into the file behind stdin and rewinds it (the offset is
 * shared with the target), so every pass of the loop reads the next input from fd 0. No
 * __AFL_FUZZ_INIT: that would switch afl-fuzz to shared-memory inputs, which maze does
 * not read. The process is reused for 10000 inputs before afl-fuzz forks a fresh one.
 */
#ifndef __AFL_LOOP
#error "build this file with afl-clang-fast (it uses AFL++'s persistent-mode macros)"
#endif

int maze_main(int argc, char **argv);

int main(int argc, char **argv)
{
    __AFL_INIT();
    while (__AFL_LOOP(10000))
        maze_main(1, argv); /* stdin, whatever afl-fuzz put after the target */
    (void)argc;
    return 0;
}
