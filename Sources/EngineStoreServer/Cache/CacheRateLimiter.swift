import Foundation
import Synchronization

/// A cache write that may be coalesced: only the newest `version` per `slot` matters.
struct RateLimitedMutation: Sendable {
    /// What is rate-limited: one Redis key (or one hash field).
    let slot: String
    /// Orders writes to one slot (a tick's timestamp); an older version never replaces a newer one.
    let version: Int64
    let mutation: CacheMutation
}

/// Writes each slot at most once per interval. The first write of a quiet slot goes out at once;
/// writes inside the interval replace each other (the newest version wins), and a trailing write
/// flushes the newest value when the interval ends — so the cache always ends on the latest price.
/// Postgres is not affected: every tick is stored whatever happens here.
final class CacheRateLimiter: Sendable {
    private struct Slot {
        var lastWriteNanos: UInt64
        var newestVersion: Int64
        var pending: CacheMutation?
    }

    private let intervalNanos: UInt64
    private let sink: @Sendable ([CacheMutation]) -> Void
    private let slots = Mutex<[String: Slot]>([:])
    private let running = Atomic<Bool>(false)

    convenience init(intervalMs: Int, writer: CacheWriter) {
        self.init(intervalMs: intervalMs) { writer.enqueue($0) }
    }

    /// `sink` receives the writes that go out (the cache writer; a test's recorder).
    init(intervalMs: Int, sink: @escaping @Sendable ([CacheMutation]) -> Void) {
        self.intervalNanos = UInt64(max(0, intervalMs)) * 1_000_000
        self.sink = sink
    }

    func start() {
        guard intervalNanos > 0 else { return }
        running.store(true, ordering: .relaxed)
        let tick = max(5_000, min(50_000, UInt32(intervalNanos / 1_000 / 10)))  // µs: a tenth of the interval
        WorkerThread.detach(name: "engine-store-rate-limiter") { [self] in
            while running.load(ordering: .relaxed) {
                usleep(tick)
                flushDue(now: monotonicNanos())
            }
            flushDue(now: .max)
        }
    }

    func stop() { running.store(false, ordering: .relaxed) }

    /// Called by the Postgres workers after their commits, in any order between workers. The version
    /// check and the hand-off to the sink happen under one lock, so the writes reach the sink in
    /// version order per slot: with an interval of 0 too, an older price never follows a newer one.
    func submit(_ items: [RateLimitedMutation], now: UInt64 = monotonicNanos()) {
        guard !items.isEmpty else { return }
        slots.withLock { slots in
            var out: [CacheMutation] = []
            for item in items {
                var slot = slots[item.slot] ?? Slot(lastWriteNanos: 0, newestVersion: .min, pending: nil)
                guard item.version >= slot.newestVersion else { continue }
                slot.newestVersion = item.version
                if intervalNanos == 0 || (now &- slot.lastWriteNanos >= intervalNanos && slot.pending == nil) {
                    slot.lastWriteNanos = now
                    out.append(item.mutation)
                } else {
                    slot.pending = item.mutation
                }
                slots[item.slot] = slot
            }
            if !out.isEmpty { sink(out) }
        }
    }

    /// Sends the trailing writes whose interval has passed; forgets slots quiet for a while.
    func flushDue(now: UInt64) {
        slots.withLock { slots in
            var out: [CacheMutation] = []
            var idle: [String] = []
            for (key, var slot) in slots {
                if let pending = slot.pending, now == .max || now &- slot.lastWriteNanos >= intervalNanos {
                    out.append(pending)
                    slot.pending = nil
                    slot.lastWriteNanos = now == .max ? monotonicNanos() : now
                    slots[key] = slot
                } else if slot.pending == nil && now != .max && now &- slot.lastWriteNanos > intervalNanos &* 100 {
                    idle.append(key)
                }
            }
            for key in idle { slots[key] = nil }
            if !out.isEmpty { sink(out) }  // under the lock, as in submit
        }
    }
}
