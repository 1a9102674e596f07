import Synchronization

/// When a watch stream last delivered a byte, shared between the reading loop and the
/// watchdog task that cancels a silent stream. Time is the reflector's `RuntimeClock`.
final class IdleWatchdog: Sendable {
    private let clock: RuntimeClock
    /// `clock.elapsed` at the last byte, in milliseconds.
    private let lastByteMs: Atomic<Int64>
    let idled = Atomic<Bool>(false)

    init(clock: RuntimeClock) {
        self.clock = clock
        lastByteMs = Atomic(clock.elapsed.wholeMilliseconds)
    }

    func heard() { lastByteMs.store(clock.elapsed.wholeMilliseconds, ordering: .relaxed) }

    /// How long since the last byte (or since the watch began).
    func silentFor() -> Duration { .milliseconds(clock.elapsed.wholeMilliseconds - lastByteMs.load(ordering: .relaxed)) }
}
