import KubetraceTestKit
import Foundation
import KubeClient
import KubetraceFormats
import Testing

/// The bad-input catalogue, Kubetrace API half: every garbage answer is refused with a message
/// that says what is wrong and that the current credentials stay, and never quotes the body.
@Suite struct APIAnswerCatalogueTests {
    static let sentAt = Date(timeIntervalSince1970: 1_800_000_000)
    static let token = "eyJ-canary-token-in-answer"

    @Test(arguments: [
        ("<html>maintenance</html>", "the API answer is not JSON; keeping the current credentials"),
        ("[\"\(token)\"]", "the API answer is not JSON; keeping the current credentials"),
        ("{\"token\":\"\(token)\",", "the API answer is not JSON; keeping the current credentials"),
        ("{\"expiresAt\":\"2027-01-15T08:00:00Z\"}", "the API answer has no token; keeping the current credentials"),
        ("{\"token\":\"\",\"expiresAt\":\"2027-01-15T08:00:00Z\"}", "the API answer has no token; keeping the current credentials"),
        ("{\"token\":42,\"expiresAt\":\"2027-01-15T08:00:00Z\"}", "the API answer has no token; keeping the current credentials"),
        ("{\"token\":\"\(token)\"}", "the API answer's expiresAt is missing or not an RFC 3339 time; keeping the current credentials"),
        ("{\"token\":\"\(token)\",\"expiresAt\":\"soon\"}", "the API answer's expiresAt is missing or not an RFC 3339 time; keeping the current credentials"),
        ("{\"token\":\"\(token)\",\"expiresAt\":1800003600}", "the API answer's expiresAt is missing or not an RFC 3339 time; keeping the current credentials"),
        ("{\"token\":\"\(token)\",\"expiresAt\":\"2020-01-01T00:00:00Z\"}", "the API answer's expiresAt 2020-01-01T00:00:00Z is in the past; keeping the current credentials"),
    ])
    func garbageAnswersAreRefusedClearly(body: String, message: String) {
        do {
            _ = try KubetraceAPIAnswer.decode(body: Array(body.utf8), dateHeader: nil, sentAt: Self.sentAt, now: Self.sentAt)
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.description == message)
            #expect(!error.description.contains(Self.token))
        }
    }

    /// The API's clock jumped (or ours did): only the lifetime it states counts, from when we asked.
    @Test(arguments: [-600.0, -30.0, 0.0, 45.0, 3_600.0])
    func clockSkewKeepsTheStatedLifetime(offset: TimeInterval) throws {
        let apiNow = Self.sentAt.addingTimeInterval(offset)
        let body = "{\"token\":\"t\",\"expiresAt\":\"\(RFC3339.format(apiNow.addingTimeInterval(30)))\"}"
        let a = try KubetraceAPIAnswer.decode(body: Array(body.utf8), dateHeader: Self.httpDate(apiNow), sentAt: Self.sentAt, now: Self.sentAt.addingTimeInterval(0.2))
        #expect(abs(a.expiresAt.timeIntervalSince(Self.sentAt) - 30) < 1.5, "offset \(offset): expiry \(a.expiresAt.timeIntervalSince(Self.sentAt)) s after asking")
    }

    @Test func withoutADateHeaderTheClocksAreAssumedToAgree() throws {
        let body = "{\"token\":\"t\",\"expiresAt\":\"\(RFC3339.format(Self.sentAt.addingTimeInterval(120)))\"}"
        let a = try KubetraceAPIAnswer.decode(body: Array(body.utf8), dateHeader: nil, sentAt: Self.sentAt, now: Self.sentAt)
        #expect(a.expiresAt == Self.sentAt.addingTimeInterval(120))
    }

    static func httpDate(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: d)
    }
}
