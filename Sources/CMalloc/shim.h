#ifndef KT_CMALLOC_SHIM_H
#define KT_CMALLOC_SHIM_H
// glibc's malloc_trim: gives freed heap memory back to the kernel. Called
// after a full (re)list, whose transient buffers would otherwise stay resident.
#include <malloc.h>
static inline int kt_malloc_trim(void) { return malloc_trim(0); }
#endif
