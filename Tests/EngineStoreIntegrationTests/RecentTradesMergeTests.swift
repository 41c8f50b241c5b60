@testable import EngineStoreServer
import Foundation
import Hiredis
import Testing

/// The recent-trades merge script: its fast path (one trade newer than the head: push and trim) and its
/// full merge (decode, dedupe, sort) leave the same list as sorting everything by (closed_at_ms, id) desc.
@Suite struct RecentTradesMergeTests {
    @Test func fastAndFullMergesKeepTheListSortedWithoutRepeats() async throws {
        let s = try await RunningServer.start()
        let redis = try s.redis()
        let key = s.namespace + "trades:recent:merge"
        func item(_ t: Int, _ id: String) -> String { #"{"id":"\#(id)","closed_at_ms":\#(t),"symbol":"BTC"}"# }
        func merge(_ items: [String], mode: CacheMutation.ListMode = .existing, max: Int = 4) throws -> Int64? {
            let m = CacheMutation.tradesMerge(key: key, items: items, maxLength: max, mode: mode, ttlSeconds: 60)
            return try redis.pipeline(m.commands).last?.integer
        }
        func ids() throws -> [String] {
            (try redis.command(["LRANGE", key, "0", "-1"]).array ?? []).compactMap { $0.text }.map {
                String($0.split(separator: "\"")[3])
            }
        }
        #expect(try merge([item(3, "c")]) == 0)  // missing, 'existing': declined
        #expect(try merge([item(3, "c")], mode: .build) == 1)
        _ = try merge([item(5, "e")])  // newer than the head: fast path
        _ = try merge([item(4, "d")])  // between: full merge
        _ = try merge([item(5, "e")])  // a repeat of the head: not newer, full merge drops it
        _ = try merge([item(5, "f")])  // same time, larger id: newer (fast)
        #expect(try ids() == ["f", "e", "d", "c"])
        _ = try merge([item(9, "z")])  // fast path trims to max
        #expect(try ids() == ["z", "f", "e", "d"])
        _ = try merge([item(1, "a")])  // older than everything kept: stays out
        #expect(try ids() == ["z", "f", "e", "d"])
        #expect((try redis.command(["TTL", key]).integer ?? 0) > 0)
        await s.stop()
    }
}
