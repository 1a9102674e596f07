import CMalloc

/// The process's allocator, as a cache of many small objects needs it (glibc malloc).
public enum ProcessMemory {
    /// Call first thing in a process that caches with reflectors: one malloc arena (glibc's
    /// per-thread caches still serve small allocations without its lock). Measured with 22,000
    /// cached objects (`kubetrace-bench operator`): 832 B per object with glibc's default (up to
    /// 8 arenas per core, each keeping its own free slack), 535 B with one; no throughput
    /// difference measurable on the replay.
    public static func useOneMallocArena() { _ = kt_malloc_single_arena() }

    /// Hands freed heap pages back to the kernel (after a relist's transient copies).
    static func returnFreed() { _ = kt_malloc_trim() }
}
