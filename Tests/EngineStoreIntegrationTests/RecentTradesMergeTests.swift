@testable import EngineStoreServer
import Foundation
import Hiredis
import TestHarness
import Testing

/// The recent-trades merge script: its fast path (one trade newer than the head: push and trim), its
/// search path (one older trade: binary search, insert) and its full merge (decode, dedupe, sort) leave
/// the same list as sorting everything by (closed_at_ms, id) desc. The hiredis calls run off the
/// cooperative pool (they block); each test notes what it saw there and checks it here.
@Suite struct RecentTradesMergeTests {
    @Test func fastAndFullMergesKeepTheListSortedWithoutRepeats() async throws {
        let services = try await TestServices.shared()
        let key = services.uniqueNamespace() + "trades:recent:merge"
        let seen = try await offPool { () -> [String] in
            let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
            var seen: [String] = []
            func item(_ t: Int, _ id: String) -> String { #"{"closed_at_ms":\#(t),"symbol":"BTC","id":"\#(id)"}"# }
            func merge(_ items: [String], mode: CacheMutation.ListMode = .existing, max: Int = 4) throws -> Int64? {
                let m = CacheMutation.tradesMerge(key: key, items: items, maxLength: max, mode: mode, ttlSeconds: 60)
                return try redis.pipeline(m.commands).last?.integer
            }
            func ids() throws {
                let list = (try redis.command(["LRANGE", key, "0", "-1"]).array ?? []).compactMap { $0.text }
                seen.append(list.map { String($0.split(separator: "\"")[9]) }.joined(separator: ","))
            }
            seen.append("missing, existing: \(try merge([item(3, "c")]).map(String.init) ?? "nil")")  // declined
            seen.append("missing, build: \(try merge([item(3, "c")], mode: .build).map(String.init) ?? "nil")")
            _ = try merge([item(5, "e")])  // newer than the head: fast path
            _ = try merge([item(4, "d")])  // between: full merge
            _ = try merge([item(5, "e")])  // a repeat of the head: not newer, full merge drops it
            _ = try merge([item(5, "f")])  // same time, larger id: newer (fast)
            try ids()
            _ = try merge([item(9, "z")])  // fast path trims to max
            try ids()
            _ = try merge([item(1, "a")])  // older than everything kept: stays out
            try ids()
            seen.append("ttl set: \((try redis.command(["TTL", key]).integer ?? 0) > 0)")
            return seen
        }
        #expect(seen == ["missing, existing: 0", "missing, build: 1", "f,e,d,c", "z,f,e,d", "z,f,e,d", "ttl set: true"])
    }

    /// One trade at a time in random order, with repeats, against the model of the list (the newest
    /// `max` of every distinct trade, sorted): the search path's place, its repeat check and its trim.
    /// A garbage entry in the list sends a merge to the full path, which drops it.
    /// `idLast`: entries as the service writes them (`id` last), whose keys the search reads without
    /// decoding; otherwise every merge takes the full path. Both must leave the same list.
    @Test(arguments: [true, false]) func oneTradeAtATimeInAnyOrderKeepsTheNewestSorted(idLast: Bool) async throws {
        let services = try await TestServices.shared()
        let key = services.uniqueNamespace() + "trades:recent:search"
        @Sendable func item(_ t: Int, _ id: String) -> String {
            idLast ? #"{"closed_at_ms":\#(t),"symbol":"BTC","id":"\#(id)"}"# : #"{"id":"\#(id)","closed_at_ms":\#(t),"symbol":"BTC"}"#
        }
        let escaped = #"a\"q"#
        // Every list that differed from the model's, and the lists after the two garbage cases.
        let (mismatches, afterGarbage, afterEscaped) = try await offPool { () -> ([String], [String], [String]) in
            let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
            func merge(_ items: [String], max: Int, mode: CacheMutation.ListMode = .existing) throws {
                let m = CacheMutation.tradesMerge(key: key, items: items, maxLength: max, mode: mode, ttlSeconds: 60)
                _ = try redis.pipeline(m.commands)
            }
            func list() throws -> [String] { (try redis.command(["LRANGE", key, "0", "-1"]).array ?? []).compactMap { $0.text } }
            var mismatches: [String] = []
            var rng = SystemRandomNumberGenerator()
            for max in [1, 3, 10] {
                _ = try redis.command(["DEL", key])
                try merge([item(50, "m")], max: max, mode: .build)
                var model: Set<[String]> = [["50", "m"]]  // (time, id) of every trade merged so far
                for _ in 0..<150 {
                    let t = Int.random(in: 0...100, using: &rng)
                    // A trade's time never changes, so an id names one time (the full merge dedupes by id).
                    let id = String(UnicodeScalar(UInt8.random(in: 97...102, using: &rng))) + String(t)
                    try merge([item(t, id)], max: max)
                    model.insert([String(t), id])
                    // Newest first by time, then by id (ASCII: bytewise is String order).
                    let expected = model.map { (t: Int($0[0])!, id: $0[1]) }
                        .sorted { $0.t != $1.t ? $0.t > $1.t : $0.id > $1.id }
                        .prefix(max).map { item($0.t, $0.id) }
                    let got = try list()
                    if got != Array(expected) { mismatches.append("max \(max) after (\(t), \(id)): \(got)") }
                }
            }
            // A garbage entry where the search probes: the full merge runs and drops it.
            _ = try redis.command(["DEL", key])
            try merge([item(9, "a"), item(7, "a2"), item(5, "a3")], max: 10, mode: .build)
            _ = try redis.command(["LSET", key, "1", "not json"])
            try merge([item(6, "b")], max: 10)
            let afterGarbage = try list()
            // An id with an escaped quote where the search probes: read by decoding (the full merge).
            _ = try redis.command(["DEL", key])
            try merge([item(9, "a"), item(7, escaped), item(5, "a3")], max: 10, mode: .build)
            try merge([item(6, "b")], max: 10)
            try merge([item(7, "c")], max: 10)  // same time: "c" sorts before "a\"q" (decoded, bytewise)
            return (mismatches, afterGarbage, try list())
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3))")
        #expect(afterGarbage == [item(9, "a"), item(6, "b"), item(5, "a3")])
        #expect(afterEscaped == [item(9, "a"), item(7, "c"), item(7, escaped), item(6, "b"), item(5, "a3")], "\(afterEscaped)")
    }
}
