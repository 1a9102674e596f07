import KubetraceTestKit
import Foundation
import KubeRuntime
@testable import KubetraceOperator
import Testing

@Suite struct RefreshPolicyTests {
    let policy = RefreshPolicy()
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func eightyPercentOfTheLifetimeWithBoundedJitter() {
        let hour = policy.nextRefresh(issuedAt: t0, expiresAt: t0 + 3600, now: t0, random: 0)
        #expect(hour == t0 + 2880)  // 48 min
        let jittered = policy.nextRefresh(issuedAt: t0, expiresAt: t0 + 3600, now: t0, random: 0.999_999)
        #expect(jittered <= t0 + 2880 && jittered >= t0 + 2880 - 180)  // at most 5 % of the lifetime, earlier only
        #expect(policy.nextRefresh(issuedAt: t0, expiresAt: t0 + 20, now: t0, random: 0) == t0 + 16)
    }

    @Test func unknownIssueTimeUsesTheMarginCappedAtTwentyPercent() {
        // A 1 h token first seen with 50 min left: 5 min before expiry.
        #expect(policy.nextRefresh(issuedAt: nil, expiresAt: t0 + 3000, now: t0, random: 0.5) == t0 + 2700)
        // A 20 s token: never "at once" because the margin exceeds the lifetime — 20 % of what is left.
        #expect(policy.nextRefresh(issuedAt: nil, expiresAt: t0 + 20, now: t0, random: 0.5) == t0 + 16)
        // Already expired: now.
        #expect(policy.nextRefresh(issuedAt: nil, expiresAt: t0 - 1, now: t0, random: 0.5) == t0)
    }

    @Test func noExpiryUsesTheRefreshInterval() {
        #expect(policy.nextRefresh(issuedAt: nil, expiresAt: nil, now: t0, random: 0.5) == t0 + 3600)
    }

    @Test func backoffIsCappedAndAlwaysBeforeExpiry() {
        var delays: [TimeInterval] = []
        for failures in 1...20 { delays.append(policy.retryDelay(failures: failures, expiresAt: nil, now: t0, random: 0.999_999)) }
        #expect(delays.first! >= 1 && delays.first! < 1.01)
        #expect(delays.allSatisfy { $0 <= 300 })
        #expect(delays.last! > 299)
        // Full jitter: a low random number gives a short delay, never below 1 s.
        #expect(policy.retryDelay(failures: 10, expiresAt: nil, now: t0, random: 0) == 1)
        // 60 s before expiry the retry comes within 30 s, whatever the failure count.
        #expect(policy.retryDelay(failures: 20, expiresAt: t0 + 60, now: t0, random: 0.999_999) <= 30)
        // Retry-After is honoured.
        #expect(policy.retryDelay(failures: 1, expiresAt: nil, now: t0, random: 0, retryAfter: 7) == 7)
    }

    @Test func expiringSoon() {
        #expect(!policy.expiringSoon(issuedAt: t0, expiresAt: t0 + 100, now: t0 + 50))
        #expect(policy.expiringSoon(issuedAt: t0, expiresAt: t0 + 100, now: t0 + 95))
        #expect(policy.expiringSoon(issuedAt: nil, expiresAt: t0 + 100, now: t0 + 90))
    }

    @Test func expiryComesFromTheEarliestSource() {
        let soon = t0 + 10
        #expect(ExpiryDiscovery.expiry(apiExpiresAt: t0 + 100, annotation: "2031-01-15T08:00:00Z", certificateNotAfter: soon) == soon)
        #expect(ExpiryDiscovery.expiry() == nil)
    }
}

@Suite(.timeLimit(.minutes(1))) struct CredentialLoopTests {
    /// Two callers at once run one refresh.
    @Test func singleFlight() async throws {
        let counter = Counter()
        let (gate, gateCont) = AsyncStream.makeStream(of: Void.self)
        let loop = CredentialLoop(name: "test", policy: RefreshPolicy(), logger: .init(label: "t"), current: { nil }, refresh: {
            await counter.increment()
            for await _ in gate { break }
            return RefreshResult(issuedAt: Date(), expiresAt: Date().addingTimeInterval(100))
        })
        async let a = loop.refreshOnce()
        async let b = loop.refreshOnce()
        // Both callers are inside refreshOnce, the first one's refresh is blocked on the gate.
        while true {
            let started = await counter.value
            let callers = await loop.callers
            if started > 0 && callers >= 2 { break }
            await Task.yield()
        }
        gateCont.yield()
        let (x, y) = await (a, b)
        #expect(x == y)
        #expect(await counter.value == 1)
    }
}

@Suite(.timeLimit(.minutes(1))) struct WakeupTests {
    /// The deadline side winning must never strand the poke side (a lost continuation hung the loop).
    @Test func deadlinesAlwaysReturn() async {
        let wakeup = Wakeup()
        for _ in 0..<2000 {
            #expect(await wakeup.wait(until: Date()) == .deadline)
        }
    }

    @Test func aPokeEndsTheWaitAndIsNotLost() async {
        let wakeup = Wakeup()
        wakeup.poke()  // before anyone waits: kept for the next wait
        #expect(await wakeup.wait(until: Date().addingTimeInterval(30)) == .poked)
        async let waited = wakeup.wait(until: Date().addingTimeInterval(30))
        await Task.yield()
        wakeup.poke()
        #expect(await waited == .poked)
    }
}

actor Counter {
    var value = 0
    func increment() { value += 1 }
}
