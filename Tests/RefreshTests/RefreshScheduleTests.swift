import Foundation
import KubeRuntime
@testable import KubetraceOperator
import Testing

/// SPEC §5's schedule as the running loop keeps it, in virtual time: a `TestClock` stands in for
/// the hours, the jitter is fixed at 0.5, and every time below is exact. The numbers are worked
/// out by hand from the rules, not from `RefreshPolicy`, so a change to either shows here.
@Suite(.timeLimit(.minutes(1))) struct RefreshScheduleTests {
    /// A 1 h token refreshes at 0.8 × 3600 − 0.5 × 5 % × 3600 = 2880 − 90 = 2790 s after it was
    /// issued: 13 refreshes in 10 h (at 0, then every 2790 s up to 33480), never a second early.
    @Test func refreshesAtEightyPercentLessJitter() async throws {
        let v = VirtualLoop()
        try await v.run {
            // Nothing stored: the first refresh is at once.
            try await v.calls.waitFor(count: 1)
            #expect(v.calls.values == [0])
            for k in 1...12 { try await v.expectRefresh(at: Double(k) * 2790) }
            try await v.reports.waitFor(count: 14)
            try await v.untilAsleep()
            await v.advance(to: 36_000)
            try await v.untilAsleep()
        }
        #expect(v.calls.values == (0...12).map { Double($0) * 2790 })
        #expect(v.calls.values.count == 13)
        // One schedule before the first refresh (nothing known, not ok), then one after each.
        #expect(v.reports.values == [VirtualLoop.Report(ok: false, next: 0)] + (1...13).map { VirtualLoop.Report(ok: true, next: Double($0) * 2790) })
        #expect(v.events.values == (0...12).map { "TokenRefreshed@\(Double($0) * 2790)" })
        // Constant message, facts as metadata (LogSink prints them after the message).
        #expect(v.sink.all.contains { $0.hasPrefix("info credential refreshed ") && $0.contains("kubeconfig-token") && $0.contains("\"expires_in\": 60m") && $0.contains("\"next_refresh_in\": 46m") },
                "\(v.sink.all.first ?? "")")
    }

    /// A stored credential with only an expiry (the annotation) is refreshed at `expiry − margin`,
    /// the 5 min margin capped at 20 % of what is left: 1200 s left → 240 s → at 960.
    @Test func storedCredentialWithOnlyAnExpiry() async throws {
        let v = VirtualLoop(stored: RefreshResult(issuedAt: nil, expiresAt: VirtualLoop.date(1200)))
        try await v.run {
            try await v.reports.waitFor(count: 1)
            #expect(v.reports.values == [VirtualLoop.Report(ok: true, next: 960)])
            try await v.expectRefresh(at: 960)
            try await v.reports.waitFor(count: 2)
        }
        #expect(v.reports.values.last == VirtualLoop.Report(ok: true, next: 960 + 2790))
    }

    /// Every refresh after the first fails: retries 1 s … with full jitter (0.5 × the doubling cap,
    /// at least 1 s), the cap 300 s, each at most half the time left; the Event for the failure
    /// once, the expiring-soon warning once (first failure with < 10 % of the lifetime, 360 s, left).
    @Test func failuresBackOffAndStayBeforeExpiry() async throws {
        let failure = RefreshFailure(kind: .retryable, message: "API_URL answered 503")
        let v = VirtualLoop(script: [.succeed(lifetime: 3600)] + Array(repeating: .fail(failure), count: 40))
        let retries: [Double] = [
            2790,                                  // due: 0.8 × 3600 − 90
            2791, 2792, 2794, 2798, 2806, 2822,    // max(1, 0.5 × 1), 0.5 × 2, × 4, × 8, × 16, × 32
            2854, 2918, 3046,                      // 0.5 × 64, × 128, × 256
            3196, 3346,                            // 0.5 × 300 (the cap) = 150 s
            3473,                                  // half of the 254 s left: 127
            3536.5, 3568.25, 3584.125, 3592.0625, 3596.03125, 3598.015625, // half of what is left
            3599.015625,                           // less than 2 s left: the minimum, 1 s
            3600.015625,                           // past expiry: still every second
        ]
        try await v.run {
            try await v.calls.waitFor(count: 1)
            for t in retries { try await v.expectRefresh(at: t) }
            try await v.reports.waitFor(count: retries.count + 2)
        }
        #expect(v.calls.values == [0] + retries)
        // The schedule after each failure is the next retry: each one before the expiry while more than 2 s are left.
        let failedReports = Array(v.reports.values.dropFirst(2))
        #expect(failedReports.map(\.next) == Array(retries.dropFirst()) + [3601.015625])
        #expect(failedReports.allSatisfy { !$0.ok })
        for (at, next) in zip(retries, retries.dropFirst()) where 3600 - at > 2 { #expect(next < 3600, "retry at \(next) after a failure at \(at)") }
        #expect(v.events.values == ["TokenRefreshed@0.0", "TokenRefreshFailed@2790.0", "TokenExpiringSoon@3346.0"])
        #expect(v.sink.all.filter { $0.contains("token_expiring_soon") }.count == 1)
        #expect(v.sink.all.filter { $0.hasPrefix("warning credential refresh failed ") && $0.contains("API_URL answered 503") }.count == retries.count)
    }

    /// `Retry-After` lengthens a retry (30 s instead of 1 s), but never past half the time left
    /// (600 s asked, 390 s of 780 given); a success then resets the schedule to 0.8 × lifetime.
    @Test func retryAfterIsHonouredBeforeExpiry() async throws {
        let v = VirtualLoop(script: [
            .succeed(lifetime: 3600),
            .fail(RefreshFailure(kind: .retryable, message: "API_URL answered 429", retryAfter: 30)),
            .fail(RefreshFailure(kind: .retryable, message: "API_URL answered 503", retryAfter: 600)),
            .succeed(lifetime: 3600),
            .fail(RefreshFailure(kind: .rejected, message: "operator_token rejected by API_URL (401)")),
        ])
        try await v.run {
            try await v.calls.waitFor(count: 1)
            try await v.expectRefresh(at: 2790)
            try await v.expectRefresh(at: 2820)          // Retry-After: 30
            try await v.expectRefresh(at: 3210)          // min(600, (3600 − 2820) / 2)
            try await v.expectRefresh(at: 3210 + 2790)   // succeeded at 3210
            try await v.expectRefresh(at: 6001)          // the backoff starts again at 1 s
            try await v.reports.waitFor(count: 7)
        }
        #expect(v.calls.values == [0, 2790, 2820, 3210, 6000, 6001])
        // A rejected token needs a person: said as an error, with the API's words in `error`.
        #expect(v.sink.all.contains { $0.hasPrefix("error credential refresh failed; it needs attention ") && $0.contains("operator_token rejected by API_URL (401)") })
        #expect(!v.sink.all.contains { $0.hasPrefix("warning") && $0.contains("operator_token rejected") })
    }

    /// Someone else wrote the credential: the loop adopts it and reschedules from it (a 600 s token
    /// issued at 1000: 1000 + 480 − 15 = 1465) without refreshing, and the backoff starts over.
    @Test func externalChangeReschedulesFromTheAdoptedCredential() async throws {
        let v = VirtualLoop()
        try await v.run {
            try await v.reports.waitFor(count: 2)
            #expect(v.reports.values.last == VirtualLoop.Report(ok: true, next: 2790))
            try await v.untilAsleep()
            await v.advance(to: 1000)
            v.stored.withLock { $0 = RefreshResult(issuedAt: VirtualLoop.date(1000), expiresAt: VirtualLoop.date(1600)) }
            v.loop.externalChange()
            try await v.reports.waitFor(count: 3)
            #expect(v.reports.values.last == VirtualLoop.Report(ok: true, next: 1465))
            #expect(v.calls.values == [0], "an outside change is adopted, not refreshed over")
            try await v.expectRefresh(at: 1465)
            try await v.reports.waitFor(count: 4)
            #expect(v.reports.values.last == VirtualLoop.Report(ok: true, next: 1465 + 2790))
        }
        #expect(v.calls.values == [0, 1465])
        #expect(v.sink.all.contains { $0.contains("credential changed by another writer; rescheduled") })
    }

    @Test func externalChangeResetsTheBackoff() async throws {
        let failure = RefreshFailure(kind: .retryable, message: "API_URL answered 503")
        let v = VirtualLoop(script: [.succeed(lifetime: 3600), .fail(failure), .fail(failure), .fail(failure), .fail(failure)])
        try await v.run {
            try await v.calls.waitFor(count: 1)
            for t: Double in [2790, 2791, 2792] { try await v.expectRefresh(at: t) }
            // Third failure: 2 s to the next try. Someone writes a fresh 1 h credential meanwhile.
            try await v.reports.waitFor(count: 5)
            #expect(v.reports.values.last == VirtualLoop.Report(ok: false, next: 2794))
            try await v.untilAsleep()
            await v.advance(to: 2793)
            v.stored.withLock { $0 = RefreshResult(issuedAt: VirtualLoop.date(2793), expiresAt: VirtualLoop.date(2793 + 3600)) }
            v.loop.externalChange()
            try await v.reports.waitFor(count: 6)
            #expect(v.reports.values.last == VirtualLoop.Report(ok: true, next: 2793 + 2790))
            // It fails again: the first failure of a new episode, so 1 s (the fourth in a row would wait 4 s).
            try await v.expectRefresh(at: 2793 + 2790)
            try await v.expectRefresh(at: 2793 + 2791)
        }
        #expect(v.events.values.filter { $0.hasPrefix("TokenRefreshFailed") } == ["TokenRefreshFailed@2790.0", "TokenRefreshFailed@5583.0"])
    }

    /// A change that leaves nothing to adopt (the Secret was deleted) is refreshed at once.
    @Test func externalChangeWithNothingStoredRefreshesAtOnce() async throws {
        let v = VirtualLoop()
        try await v.run {
            try await v.reports.waitFor(count: 2)
            try await v.untilAsleep()
            await v.advance(to: 100)
            v.loop.externalChange()
            try await v.calls.waitFor(count: 2)
            try await v.reports.waitFor(count: 3)
        }
        #expect(v.calls.values == [0, 100])
        #expect(v.reports.values.last == VirtualLoop.Report(ok: true, next: 100 + 2790))
    }
}
