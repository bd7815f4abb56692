/* sparse_walked.c - sparse_reserve.c without its 128 GiB mapping. With no mapping large
 * enough to have its holes trapped, the 256 MiB mapping's holes are walked at each
 * restore (in sparse_reserve.c they are trapped). Same inputs and exit codes. Fork
 * mode: 'A...' -> 10, anything else -> 0; a leak looks like 1 (or 201), as there. */
#define SPARSE_WALKED_ONLY
#include "sparse_reserve.c"
