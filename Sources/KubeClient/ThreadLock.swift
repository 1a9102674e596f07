import Glibc

/// A value behind a pthread mutex, for state shared with the libcurl thread. The standard
/// library's `Mutex` is as correct, but on Linux it locks with raw futexes that
/// ThreadSanitizer cannot see, so every access from the curl thread reads as a race;
/// `make test-tsan` must be able to tell real races from those.
final class ThreadLock<Value>: @unchecked Sendable {
    /// Allocated, so its address never moves (a pthread mutex must not be copied).
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
