/// A job that runs every `intervalNanos` from a thread's loop: `fire(now)` says whether it is due
/// and, when it is, schedules the next run one interval after `now`. Lives on that thread only.
struct Periodic {
    let intervalNanos: UInt64
    private(set) var dueNanos: UInt64

    /// Due first at `firstNanos` (0: at once).
    init(everyNanos interval: UInt64, firstNanos: UInt64 = 0) {
        self.intervalNanos = interval
        self.dueNanos = firstNanos
    }

    /// Never due.
    static var never: Periodic { Periodic(everyNanos: 0, firstNanos: .max) }

    mutating func fire(_ now: UInt64) -> Bool {
        guard now >= dueNanos else { return false }
        dueNanos = now + intervalNanos
        return true
    }

    /// Moves the next run to `nanos` (a longer wait after a failed pass, say).
    mutating func postpone(until nanos: UInt64) { dueNanos = nanos }
}

/// The maintenance thread's timetable: one named timer per periodic job.
struct MaintenanceSchedule {
    static let nanosPerMs: UInt64 = 1_000_000
    static let nanosPerSecond: UInt64 = 1_000_000_000
    /// How long the thread waits for a task before it looks at its timers, and how many tasks it takes at once.
    static let taskWaitSeconds = 0.05
    static let taskBatch = 16
    /// After a failed relay pass (Redis refusing writes, say) the next waits this long.
    static let relayRetryAfterFailureNanos: UInt64 = 1 * nanosPerSecond
    static let heapTrimNanos: UInt64 = 250 * nanosPerMs
    static let outboxDepthNanos: UInt64 = 1 * nanosPerSecond
    /// The first purge runs after its interval, or after this when that is shorter.
    static let firstPurgeMaxMs: UInt64 = 60_000
    /// The first tick retention pass waits at most this long after start (start-up has other work).
    static let firstTickRetentionNanos: UInt64 = 10 * nanosPerSecond
    /// With a backlog of old ticks, the next pass follows after this pause.
    static let tickRetentionBacklogNanos: UInt64 = 100 * nanosPerMs

    var relay: Periodic
    var heapTrim = Periodic(everyNanos: heapTrimNanos)
    var outboxDepth = Periodic(everyNanos: outboxDepthNanos)
    var purge: Periodic
    var check: Periodic
    var tickRetention = Periodic.never

    init(relayIntervalMs: Int, purgeIntervalMs: UInt64, checkIntervalSeconds: Int, now: UInt64) {
        relay = Periodic(everyNanos: UInt64(relayIntervalMs) * Self.nanosPerMs)
        purge = Periodic(everyNanos: purgeIntervalMs * Self.nanosPerMs,
                         firstNanos: now + min(Self.firstPurgeMaxMs, purgeIntervalMs) * Self.nanosPerMs)
        if checkIntervalSeconds > 0 {
            let interval = UInt64(checkIntervalSeconds) * Self.nanosPerSecond
            check = Periodic(everyNanos: interval, firstNanos: now + interval)
        } else {
            check = .never
        }
    }
}
