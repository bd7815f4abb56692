/* scattered_walked.c - scattered_heap.c without its 1 TiB mapping. With no mapping large
 * enough to have its holes trapped, the 40 MiB mappings' holes are walked at each
 * restore, neighbours sharing a walk (in scattered_heap.c they are trapped). Same
 * inputs and exit codes. Fork mode: 'A...' -> 10, anything else -> 0; a leak looks like 1
 * (or 201), as there. */
#define SCATTERED_WALKED_ONLY
#include "scattered_heap.c"
