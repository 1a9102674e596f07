import Foundation
import KubeClient
import KubeRuntime
import Synchronization

/// What the leader says about its watches, stamped on the Lease at every renewal
/// (annotation `kubetrace.net/watch-health`), so `status` can show it from anywhere.
struct WatchHealthRecord: Codable, Equatable {
    struct Watch: Codable, Equatable {
        var synced: Bool
        var events: Int
        var relists: Int
        var reconnects: Int
        var decodeErrors: Int
        /// RFC 3339; nil before anything arrived.
        var lastActivity: String?
    }

    static let annotation = "kubetrace.net/watch-health"

    /// When the record was written (RFC 3339).
    var at: String
    var watches: [String: Watch]

    init(at: Date, stats: [String: WatchStats]) {
        self.at = RFC3339.format(at)
        watches = stats.mapValues { s in
            Watch(synced: s.synced, events: s.events, relists: s.relists, reconnects: s.reconnects, decodeErrors: s.decodeErrors,
                  lastActivity: s.lastActivity > 0 ? RFC3339.format(Date(timeIntervalSince1970: s.lastActivity)) : nil)
        }
    }

    func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    static func decode(_ text: String?) -> WatchHealthRecord? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(WatchHealthRecord.self, from: Data(text.utf8))
    }
}

/// Where the elector gets the record from once the watches exist.
final class WatchHealthBox: Sendable {
    private let source = Mutex<(@Sendable () -> [String: WatchStats])?>(nil)

    func attach(_ stats: @escaping @Sendable () -> [String: WatchStats]) { source.withLock { $0 = stats } }

    func annotations() -> [String: String] {
        guard let stats = source.withLock({ $0 }) else { return [:] }
        return [WatchHealthRecord.annotation: WatchHealthRecord(at: Date(), stats: stats()).encoded()]
    }
}
