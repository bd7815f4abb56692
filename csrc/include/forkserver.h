/* The harness-facing API of the forkserver runtime.
 *
 * A harness that has expensive initialisation calls FORKSERVER_INIT() once that
 * initialisation is done: the fork server starts there, and in snapshot mode that is
 * the point every input rolls back to. Without the call the server starts at main's
 * entry. libFuzzer-style harnesses (LLVMFuzzerTestOneInput) need nothing: the runtime
 * supplies main and starts the server before the first input. */
#ifndef FORKSERVER_H
#define FORKSERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Starts the fork server (idempotent). Prefer the macro, which also marks the binary
 * as deferred so that fuzzers do not start the server at main's entry. */
void forkserver_init(void);

/* Number of the current iteration within this process (0 in fork and exec mode). */
unsigned long long forkserver_iteration(void);

/* `used` keeps the marker string in the binary even at -O2: fuzzers look for it. */
#define FORKSERVER_INIT()                                                          \
    do {                                                                           \
        static const char *const forkserver_defer_marker_ __attribute__((used)) =  \
            "##SIG_AFL_DEFER_FORKSRV##";                                           \
        forkserver_init();                                                         \
    } while (0)

/* AFL++ spelling, so AFL-style harnesses build unchanged. */
#ifndef __AFL_INIT
#define __AFL_INIT() FORKSERVER_INIT()
#endif

#ifdef __cplusplus
}
#endif
#endif
