@testable import EngineStoreServer
import Synchronization
import Testing

/// The limiter on a virtual clock: at most one write per slot per interval, newest value wins,
/// a trailing write always flushes the newest.
@Suite struct RateLimiterTests {
    final class Sink: Sendable {
        let written = Mutex<[CacheMutation]>([])
        func take() -> [CacheMutation] { written.withLock { w in defer { w = [] }; return w } }
    }

    func price(_ v: Int, _ version: Int64) -> RateLimitedMutation {
        RateLimitedMutation(slot: "BTC", version: version, mutation: .set(key: "k", value: "\(v)", ttlSeconds: 10))
    }

    @Test func oncePerIntervalNewestWinsTrailingFlush() {
        let sink = Sink()
        let limiter = CacheRateLimiter(intervalMs: 1000) { m in sink.written.withLock { $0.append(contentsOf: m) } }
        let ms: UInt64 = 1_000_000
        let start: UInt64 = 10_000 * ms
        limiter.submit([price(1, 1)], now: start)
        #expect(sink.take() == [.set(key: "k", value: "1", ttlSeconds: 10)])
        limiter.submit([price(2, 2)], now: start + 100 * ms)
        limiter.submit([price(4, 4)], now: start + 200 * ms)
        limiter.submit([price(3, 3)], now: start + 300 * ms)  // older than 4: ignored
        limiter.flushDue(now: start + 900 * ms)
        #expect(sink.take().isEmpty)
        limiter.flushDue(now: start + 1000 * ms)
        #expect(sink.take() == [.set(key: "k", value: "4", ttlSeconds: 10)])
        // A write right after the trailing one waits for the next interval.
        limiter.submit([price(5, 5)], now: start + 1100 * ms)
        #expect(sink.take().isEmpty)
        limiter.flushDue(now: start + 2000 * ms)
        #expect(sink.take() == [.set(key: "k", value: "5", ttlSeconds: 10)])
        // A quiet slot writes at once.
        limiter.submit([price(6, 6)], now: start + 5000 * ms)
        #expect(sink.take() == [.set(key: "k", value: "6", ttlSeconds: 10)])
    }

    @Test func zeroIntervalWritesEverything() {
        let sink = Sink()
        let limiter = CacheRateLimiter(intervalMs: 0) { m in sink.written.withLock { $0.append(contentsOf: m) } }
        limiter.submit([price(1, 1), price(2, 2)], now: 1)
        #expect(sink.take().count == 2)
        // Still never older after newer: a worker that committed first may hand its price on last.
        limiter.submit([price(4, 4)], now: 2)
        limiter.submit([price(3, 3)], now: 3)
        #expect(sink.take() == [.set(key: "k", value: "4", ttlSeconds: 10)])
    }

    /// Two threads submitting newer and older prices at once: whatever the interleaving, the last
    /// write the sink sees is the newest.
    @Test func concurrentSubmitsEndOnTheNewest() async {
        for _ in 0..<50 {
            let sink = Sink()
            let limiter = CacheRateLimiter(intervalMs: 0) { m in sink.written.withLock { $0.append(contentsOf: m) } }
            await withTaskGroup(of: Void.self) { group in
                for v in 1...8 { group.addTask { limiter.submit([self.price(v, Int64(v))]) } }
            }
            #expect(sink.take().last == .set(key: "k", value: "8", ttlSeconds: 10))
        }
    }
}
