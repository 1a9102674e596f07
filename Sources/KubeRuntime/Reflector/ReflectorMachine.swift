/// The reflector's decisions — what to request next, and how long to wait first — as a pure
/// state machine: inputs are what happened to the last request and the time, the output is
/// the next action. `Reflector.run` only carries the actions out, so every rule here is
/// tested without I/O and in exact (virtual) time.
///
/// The rules are client-go's `tools/cache/reflector.go`:
///
/// - start with the initial state: a streaming list (`ListAndWatch` → `watchList`, the watch
///   with `sendInitialEvents=true`, delivering the state up to the `k8s.io/initial-events-end`
///   bookmark) when `useStreamingList`, otherwise a paged LIST (`list`, then `watch`);
/// - a server that answers the streaming list with 400/422, a plain bookmark, or a stream that
///   ends before the end bookmark, has no streaming list: LIST instead, at once (client-go's
///   fallback in `ListAndWatch` when `watchList` fails) — and, unlike client-go, which tries
///   the streaming list again at its next `ListAndWatch`, for good;
/// - after a LIST, watch from its resourceVersion;
/// - how a watch's end is answered (resume at once, back off, relist) is `WatchRestartPolicy`'s
///   rule, client-go's `watch`/`handleAnyWatch` and the 800 ms … 30 s backoff manager with its
///   2 min reset; the delay is drawn with full jitter from the `RandomSource` and is never
///   below the server's Retry-After (which client-go's REST client waits out,
///   `rest/with_retry.go`; its reflector retries a 429 as `isWatchErrorRetriable`);
/// - a 410 Expired relists (`isExpiredError` → `ListAndWatch` again), by streaming list when
///   the server has one.
///
/// Time is a monotonic `Duration` (`RuntimeClock.elapsed`) handed in with each outcome.
struct ReflectorMachine: Sendable {
    /// What to do next.
    indirect enum Action: Equatable, Sendable {
        /// A paged LIST; report `.listed` (or the failure).
        case list
        /// A watch from the last resourceVersion, or with `initial`, a streaming list
        /// (`sendInitialEvents`) that delivers the whole state first.
        case watch(initial: Bool)
        /// Sleep for exactly this long, then do `then`.
        case wait(Duration, then: Action)
    }

    /// What happened to the request the last action asked for.
    enum Outcome: Equatable, Sendable {
        /// The LIST succeeded and its state was delivered.
        case listed
        /// The watch stream ended (closed, cut, timed out, idle) after `lasted`, having
        /// delivered `lines` lines. A streaming list ends so only after its state was delivered.
        case watchEnded(lasted: Duration, lines: Int)
        /// 410 Expired or Gone: the resourceVersion is too old.
        case expired
        /// The streaming list is not served (400/422, a plain bookmark, no end bookmark).
        case unsupported
        /// The request failed before or without a stream (refused, 429, 5xx, an ERROR event).
        case failed(retryAfter: Duration?)
    }

    private var restart: WatchRestartPolicy
    private let random: RandomSource
    private let watchTimeoutRange: ClosedRange<Int>
    /// The state must be (re)fetched: at the start and after a 410.
    private(set) var needList = true
    /// Whether the initial state comes by streaming list (until the server says it has none).
    private(set) var streamingList: Bool
    private var synced = false
    /// The request the last action asked for (how `.unsupported` is read).
    private var issued: Action?
    /// Watches restarted after they ended or failed, and relists among them (for `WatchStats`).
    private(set) var reconnects = 0
    private(set) var relists = 0

    init(options: ReflectorOptions, random: RandomSource) {
        restart = WatchRestartPolicy(initialBackoff: options.initialBackoff, maxBackoff: options.maxBackoff, resetAfter: options.healthyAfter)
        streamingList = options.useStreamingList
        watchTimeoutRange = options.watchTimeoutSeconds
        self.random = random
    }

    /// Backoffs in the current episode (for logs).
    var failures: Int { restart.failures }

    /// The first action.
    mutating func start() -> Action { request() }

    /// The next action after `outcome`, at monotonic time `now`.
    mutating func after(_ outcome: Outcome, now: Duration) -> Action {
        let ending: WatchRestartPolicy.Ending
        switch outcome {
        case .listed:
            needList = false
            return request()
        case .unsupported where issued == .watch(initial: true):
            streamingList = false
            return request()
        case .unsupported, .expired:
            ending = .expired
        case .watchEnded(let lasted, let lines):
            // The state arrived (a streaming list ends this way only after its end bookmark).
            needList = false
            ending = .closed(lasted: lasted, lines: lines)
        case .failed(let retryAfter):
            ending = .failed(retryAfter: retryAfter)
        }
        let decision = restart.after(ending, now: now)
        reconnects += 1
        if decision.relist {
            needList = true
            relists += 1
        }
        let next = request()
        guard let cap = decision.backoffCap else { return next }
        return .wait(max(random.fullJitter(cap), decision.floor), then: next)
    }

    /// The state was delivered; true the first time (deliver `.synced` then).
    mutating func markSynced() -> Bool {
        defer { synced = true }
        return !synced
    }

    /// The server-side timeout of the next watch: uniform in the range (client-go: 5–10 min,
    /// `minWatchTimeout * (rand.Float64() + 1.0)`), so many watchers do not reconnect together.
    func watchTimeoutSeconds() -> Int {
        let r = watchTimeoutRange
        return min(r.lowerBound + Int(random.unit() * Double(r.count)), r.upperBound)
    }

    private mutating func request() -> Action {
        let action: Action = needList ? (streamingList ? .watch(initial: true) : .list) : .watch(initial: false)
        issued = action
        return action
    }
}
