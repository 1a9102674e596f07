import Foundation
public import KubeClient

/// Memory for the operator container, from the number of objects it caches.
///
/// The rule (measured by `kubetrace-bench operator`, 2026-12-06: 43 MB resident idle
/// and 55 MB with 22,000 cached objects for a static-stdlib build, 565 B per object;
/// a dynamically linked build is about 6 MB larger idle): working set = 48 MiB +
/// 600 B × objects; request = working set × 1.5, rounded up to 16 MiB;
/// limit = 2 × request (room for a relist, when old and new lists briefly coexist).
public struct MemorySizing: Sendable, Equatable {
    public var requestMiB: Int
    public var limitMiB: Int

    public static let baselineMiB = 48.0
    public static let bytesPerObject = 600.0
    public static let headroom = 1.5
    /// The cluster the defaults are for.
    public static let defaultObjects = 20_000

    public static func forObjects(_ count: Int) -> MemorySizing {
        let working = baselineMiB + Double(max(0, count)) * bytesPerObject / 1_048_576
        let request = Int((working * headroom / 16).rounded(.up)) * 16
        return MemorySizing(requestMiB: request, limitMiB: request * 2)
    }

    public static let defaults = forObjects(defaultObjects)
}

/// Counts what the operator will watch, with paged lists (500 per page).
struct ClusterSizer {
    let client: KubeClient

    struct Count: Sendable, Equatable {
        var pods = 0
        var serviceAccounts = 0
        var secrets = 0
        var namespaces = 0
        var total: Int { pods + serviceAccounts + secrets + namespaces }
    }

    /// The scopes the operator watches: its namespace plus the listed targets, or
    /// everything for a selector (SPEC §2 and RepairService).
    func count(namespace: String, targets: TargetNamespaces?, pullSecret: String) async throws -> Count {
        var scopes: [String?] = [namespace]
        switch targets {
        case .list(let l)?: scopes += l.filter { $0 != namespace }.map { Optional($0) }
        case .selector?: scopes = [nil]
        case nil: break
        }
        var c = Count()
        for scope in scopes {
            c.pods += try await pages(Pod.self, scope)
            c.serviceAccounts += try await pages(ServiceAccount.self, scope)
            c.secrets += try await pages(Secret.self, scope, fieldSelector: "metadata.name=\(pullSecret)")
        }
        if case .selector(let sel)? = targets {
            var o = ListOptions()
            o.labelSelector = sel
            c.namespaces = try await client.listAll(Namespace.self, options: o).items.count
        }
        return c
    }

    /// Items across every page; only the count is kept.
    private func pages<T: KubeResource>(_ type: T.Type, _ namespace: String?, fieldSelector: String? = nil) async throws -> Int {
        var options = ListOptions()
        options.limit = 500
        options.fieldSelector = fieldSelector
        var n = 0
        while true {
            let page = try await client.list(T.self, namespace: namespace, options: options)
            n += page.items.count
            guard let next = page.metadata.continue, !next.isEmpty else { return n }
            options.continue = next
        }
    }
}
