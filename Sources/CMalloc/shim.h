#ifndef KT_CMALLOC_SHIM_H
#define KT_CMALLOC_SHIM_H
// glibc's malloc_trim: gives freed heap memory back to the kernel. Called
// after a full (re)list, whose transient buffers would otherwise stay resident.
#include <malloc.h>
static inline int kt_malloc_trim(void) { return malloc_trim(0); }
// One malloc arena for the whole process (glibc's per-thread caches still serve small
// allocations without the lock): a cache built by several threads otherwise leaves each
// thread's arena with its own slack.
static inline int kt_malloc_single_arena(void) { return mallopt(M_ARENA_MAX, 1); }
#endif
