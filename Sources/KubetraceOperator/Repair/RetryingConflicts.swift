import Foundation

/// Runs `write` until it succeeds, at most five times while it fails with a conflict
/// (409, or a JSON Patch `test` that no longer holds); each attempt starts from a
/// fresh read. Returns what the successful attempt returned (false or nil: nothing was needed).
func retryingConflicts<T>(isolation: isolated (any Actor)? = #isolation, _ write: (_ attempt: Int) async throws -> T) async throws -> T {
    var attempt = 1
    while true {
        do {
            return try await write(attempt)
        } catch where RepairError.isRetryableConflict(error) && attempt < 5 {
            attempt += 1
        }
    }
}
