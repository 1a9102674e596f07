import KubeClient

/// A failed write, turned into a message that says what to do.
enum RepairError {
    static func describe(_ error: any Error, verb: String, object: String) -> String {
        guard let e = error as? KubeClientError else { return "\(verb) \(object): \(error)" }
        if e.isForbidden {
            // The API server's message names user, verb, resource and namespace; keep it whole.
            return "\(verb) \(object) is forbidden: \(e.status?.message ?? e.message) — grant the operator's Role this permission (kubetrace-operator manifest renders it)"
        }
        return "\(verb) \(object): \(e.message)"
    }

    static func isRetryableConflict(_ error: any Error) -> Bool {
        guard let e = error as? KubeClientError else { return false }
        // 409 for a stale resourceVersion; 422 for a JSON Patch whose `test` failed.
        return e.isConflict || e.isAlreadyExists || (e.isInvalid && (e.status?.message ?? e.message).contains("testing value"))
    }
}
