/* Starts the server at main's entry for harnesses that do not call FORKSERVER_INIT().
 * Linked only into main()-style harnesses (with -Wl,--wrap=main). */
#include "fs_runtime.h"

/* `forkserver build` links with -Wl,--wrap=main: the server starts at main's entry
 * unless the harness defers it with FORKSERVER_INIT(). */
int __real_main(int argc, char **argv, char **envp);
int __wrap_main(int argc, char **argv, char **envp) {
    fs_runtime_init();
    if (!fs_st->cfg.deferred) fs_server_start();
    return __real_main(argc, argv, envp);
}

