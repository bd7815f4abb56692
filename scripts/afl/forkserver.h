/* forkserver.h for afl-clang-fast builds: the harnesses include the forkserver runtime's
 * header, but an AFL++ build links AFL++'s runtime instead. This shim maps the harness
 * API onto AFL++'s: FORKSERVER_INIT() becomes __AFL_INIT() (deferred fork server), and
 * forkserver_iteration() is always 0. Put its directory first on the include path:
 *   afl-clang-fast -I scripts/afl harnesses/maze.c -o maze.afl
 */
#ifndef FORKSERVER_H
#define FORKSERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __AFL_COMPILER
#define FORKSERVER_INIT() __AFL_INIT()
#else
#define FORKSERVER_INIT() do { } while (0)
#endif

static inline unsigned long long forkserver_iteration(void) { return 0; }

#endif
