@testable import EngineStoreServer
import Hiredis
import Testing

/// The cache writer sends a mutation as `appendRESP` writes it; a cluster, and every test that reads
/// `commands`, sees the argument lists. The two must be the same bytes, for every kind of mutation.
@Suite struct CacheMutationRESPTests {
    static let awkward = "a\r\nb\0c émoji 😀 \u{2028}"
    static let every: [CacheMutation] = [
        .set(key: "ingest:trade:t", value: awkward, ttlSeconds: 86_400),
        .set(key: "", value: "", ttlSeconds: 0),
        .hashSet(key: "crypto_prices", field: "BTC", value: "101.5", ttlSeconds: 10),
        .streamAdd(key: "trades:stream", maxLength: 100_000, fields: [("event_id", "t-1"), ("data", awkward)]),
        .streamAdd(key: "s", maxLength: 0, fields: []),
        .versionedSet(key: "k", versionKey: "k:v", value: awkward, version: "00000000000000000042", ttlSeconds: -1),
        .positionSet(key: "positions:m", versionKey: "positions:m:v", field: "BTC", value: "{}", version: "1", ttlSeconds: 3600),
        .positionSets(key: "positions:m", versionKey: "positions:m:v", fields: [("BTC", "1", awkward), ("ETH", "2", "{}")], ttlSeconds: 3600),
        .positionDelete(key: "positions:m", versionKey: "positions:m:v", field: "ETH", version: "2", ttlSeconds: Int.max),
        .positionsSync(key: "positions:m", versionKey: "positions:m:v", open: [("BTC", "3", awkward), ("SOL", "4", "{}")],
                       closed: [("ETH", "2")], mode: .replace, ttlSeconds: 3600),
        .positionsSync(key: "positions:m", versionKey: "positions:m:v", open: [], closed: [], mode: .build, ttlSeconds: 0),
        .tradesMerge(key: "trades:recent:m", items: ["{\"id\":1}", awkward], maxLength: 100, mode: .existing, ttlSeconds: 60, drop: ["x"]),
        .conversationsMerge(key: "conversations:m", items: [awkward], maxLength: 50, mode: .build, ttlSeconds: Int.min, drop: []),
        .leaderboardReplace(key: "leaderboard", versionKey: "leaderboard:v", members: [(1.5, "m1"), (-2, "m2")], version: "7"),
    ]

    @Test func eachMutationWritesItsCommandsByteForByte() {
        for mutation in Self.every {
            var written: [UInt8] = []
            mutation.appendRESP(to: &written)
            let same = written == RESP.commands(mutation.commands)  // compared apart: a failure prints no bytes
            #expect(same, "\(mutation.commands.map { $0.first ?? "" }) of \(mutation.key)")
            #expect(mutation.commandCount == mutation.commands.count)
        }
    }
}
