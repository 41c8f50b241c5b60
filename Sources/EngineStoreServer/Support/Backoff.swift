/// When to try a connection again after it failed: a delay that starts at `initialMs`, is multiplied
/// by `multiplier` after each failure up to `maxMs`, and goes back to the start after a success.
/// A fixed delay is `initialMs == maxMs`. Times are monotonic nanoseconds (`monotonicNanos()`).
/// A value type: each thread keeps its own.
struct Backoff: Sendable {
    let initialMs: UInt64
    let maxMs: UInt64
    let multiplier: UInt64
    /// The delay the next failure waits.
    private(set) var delayMs: UInt64
    /// No attempt before this.
    private(set) var nextAttemptNanos: UInt64 = 0

    init(initialMs: UInt64, maxMs: UInt64, multiplier: UInt64 = 2) {
        self.initialMs = initialMs
        self.maxMs = maxMs
        self.multiplier = multiplier
        self.delayMs = initialMs
    }

    /// Whether an attempt may be made at `now`.
    func isDue(_ now: UInt64) -> Bool { now >= nextAttemptNanos }

    /// After a failure at `now`: the next attempt waits the current delay, which then grows.
    /// Returns the delay waited, in milliseconds.
    @discardableResult
    mutating func next(now: UInt64) -> UInt64 {
        let waited = delayMs
        nextAttemptNanos = now + waited * 1_000_000
        delayMs = min(delayMs * multiplier, maxMs)
        return waited
    }

    /// The next attempt waits `ms` after `now`, whatever the current delay (which is kept).
    mutating func retry(afterMs ms: UInt64, now: UInt64) {
        nextAttemptNanos = now + ms * 1_000_000
    }

    /// After a success: back to the first delay, and an attempt may be made at once.
    mutating func reset() {
        delayMs = initialMs
        nextAttemptNanos = 0
    }
}
