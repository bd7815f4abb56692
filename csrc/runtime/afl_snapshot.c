/* Linked by `forkserver build --afl-snapshot`: carries AFL++'s persistent-mode marker,
 * so afl-fuzz drives the target as a persistent one, and the runtime answers with
 * snapshot mode (a full reset after every input) unless FORKSERVER_MODE says otherwise. */
#include "fs_runtime.h"

int fs_afl_snapshot_build = 1;
__attribute__((used)) static const char persistent_marker[] = FS_SIG_PERSISTENT;
