import Foundation

/// Runs blocking work (libpq, hiredis, process start-up) on a thread of its own and awaits it,
/// so tests running in parallel never starve Swift's cooperative pool (two threads on two cores).
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (k: CheckedContinuation<T, any Error>) in
        let t = Thread {
            do { k.resume(returning: try body()) } catch { k.resume(throwing: error) }
        }
        t.start()
    }
}
