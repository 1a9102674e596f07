/// What a reflector does after a watch ends, as client-go decides it
/// (tools/cache/reflector.go: `watch`, `handleAnyWatch`, and the backoff
/// manager `NewReflectorWithOptions` builds: 800 ms doubling to 30 s, reset
/// after 2 min without a backoff):
///
/// - a stream that closed after delivering anything (an event or a bookmark),
///   or that lasted a second or more, is resumed **at once** from the last
///   resourceVersion — the server timing the watch out, a cut connection, a
///   GOAWAY and a reset stream all look like this (apimachinery's
///   `StreamWatcher` closes quietly on EOF and probable-EOF errors);
/// - a stream that closed within a second without delivering anything is a
///   "very short watch": a failure, backed off;
/// - a request that failed before its stream began (connection refused, 429,
///   5xx) is backed off, honouring Retry-After, then watched again;
/// - 410 Expired relists, after a backoff.
///
/// Two deliberate differences, both cheaper for the server: client-go relists
/// after a very short watch and after most request errors because its watch
/// loop returns to `ListAndWatch`; here both resume from the last
/// resourceVersion (a 410 still relists), and a stream broken by a transport
/// error mid-way resumes like a closed one instead of relisting.
///
/// One addition, a safety valve client-go does not have: after `shortWatchLimit` watches in a
/// row that each ended within a second (whatever they delivered), the next resume backs off,
/// so a server that ends every watch after one line cannot turn the reflector into a loop
/// bounded only by the round trip.
///
/// Pure: the caller supplies the time (a monotonic `Duration`, `RuntimeClock.elapsed`) and
/// applies the jitter (`ReflectorMachine` does both).
struct WatchRestartPolicy: Sendable {
    enum Ending: Equatable {
        /// The stream ended after its response head: `lines` is what it delivered.
        case closed(lasted: Duration, lines: Int)
        /// 410 Expired or Gone (an ERROR event or the request's status).
        case expired
        /// The request failed before a stream began.
        case failed(retryAfter: Duration?)
    }

    struct Decision: Equatable {
        var relist: Bool
        /// nil: go on at once. Otherwise wait a full-jitter delay in [0, cap], never below `floor`.
        var backoffCap: Duration?
        var floor: Duration = .zero
    }

    let initialBackoff: Duration
    let maxBackoff: Duration
    /// A backoff this long after the previous one starts again from `initialBackoff`.
    let resetAfter: Duration
    /// Backoffs in the current episode.
    private(set) var failures = 0
    private var lastBackoff: Duration?
    /// Watches in a row that ended within a second.
    private var shortInARow = 0
    static let shortWatchLimit = 50

    init(initialBackoff: Duration, maxBackoff: Duration, resetAfter: Duration) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.resetAfter = resetAfter
    }

    mutating func after(_ ending: Ending, now: Duration) -> Decision {
        if case .closed(let lasted, _) = ending, lasted < .seconds(1) { shortInARow += 1 } else { shortInARow = 0 }
        switch ending {
        case .closed(let lasted, let lines) where (lines > 0 || lasted >= .seconds(1)) && shortInARow <= Self.shortWatchLimit:
            return Decision(relist: false, backoffCap: nil)
        case .closed:
            return Decision(relist: false, backoffCap: backoff(now: now))
        case .expired:
            return Decision(relist: true, backoffCap: backoff(now: now))
        case .failed(let retryAfter):
            return Decision(relist: false, backoffCap: backoff(now: now), floor: retryAfter ?? .zero)
        }
    }

    private mutating func backoff(now: Duration) -> Duration {
        if let last = lastBackoff, now - last >= resetAfter { failures = 0 }
        lastBackoff = now
        failures += 1
        return min(maxBackoff, initialBackoff * (1 << min(failures - 1, 20)))
    }
}
