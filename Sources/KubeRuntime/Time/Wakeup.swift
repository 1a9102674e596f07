public import Foundation
import Synchronization

/// A one-slot wake-up for a loop that sleeps until a deadline: `poke()` ends the current
/// wait early (a queue got work, a credential was changed by someone else), and a poke
/// with nobody waiting is kept for the next wait, so none is lost between two waits.
public final class Wakeup: Sendable {
    public init() {}

    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    /// Ends the current wait, or the next one if nobody waits.
    public func poke() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter { s.waiter = nil; return w }
            s.pending = true
            return nil
        }
        w?.resume()
    }

    public enum Reason: Sendable { case deadline, poked }

    /// Returns at `deadline` or at the first poke, whichever comes first, and says which.
    /// Also returns (as `.deadline`) when the task is cancelled.
    public func wait(until deadline: Date, clock: RuntimeClock = .system) async -> Reason {
        await withTaskGroup(of: Reason.self) { group in
            group.addTask {
                try? await clock.sleep(until: deadline)
                return .deadline
            }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        // Under the lock: a cancellation that came before the waiter was stored
                        // must resume it here, or nobody would (the handler already ran).
                        let now = self.state.withLock { s -> Bool in
                            if Task.isCancelled { return true }
                            if s.pending { s.pending = false; return true }
                            s.waiter = c
                            return false
                        }
                        if now { c.resume() }
                    }
                } onCancel: {
                    let w = self.state.withLock { s -> CheckedContinuation<Void, Never>? in defer { s.waiter = nil }; return s.waiter }
                    w?.resume()
                }
                return .poked
            }
            let first = await group.next() ?? .deadline
            group.cancelAll()
            return first
        }
    }
}
