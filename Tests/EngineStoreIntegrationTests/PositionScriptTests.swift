@testable import EngineStoreServer
import Hiredis
import TestHarness
import Testing

/// The script behind every direct position write (CacheScripts.positionSet), on a real Redis: a
/// missing hash is declined unless known empty, an older version never replaces a newer one, and the
/// known-empty mark goes exactly when the hash exists again.
@Suite struct PositionScriptTests {
    @Test func writesFollowTheVersionAndTheKnownEmptyMark() async throws {
        let services = try await TestServices.shared()
        let hash = services.uniqueNamespace() + "positions:m"
        let ver = hash + ":v"
        // The steps run off the cooperative pool (hiredis blocks); each notes what it saw, in order.
        let seen = try await offPool { () -> [String] in
            let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
            var seen: [String] = []
            func set(_ field: String, _ value: String, _ version: Int64) throws {
                let m = CacheMutation.positionSet(key: hash, versionKey: ver, field: field, value: value,
                                                  version: CacheVersion.of(version), ttlSeconds: 60)
                seen.append("set \(field)@\(version) -> \(try redis.pipeline(m.commands).last?.integer.map(String.init) ?? "nil")")
            }
            func field(_ key: String, _ name: String) throws {
                seen.append("\(key == hash ? "hash" : "ver").\(name) = \(try redis.command(["HGET", key, name]).text ?? "nil")")
            }
            func exists(_ key: String) throws {
                seen.append("\(key == hash ? "hash" : "ver") exists: \(try redis.command(["EXISTS", key]).integer == 1)")
            }
            // Missing and not known empty: declined, nothing written (the relay builds the hash whole).
            try set("BTC", "{\"v\":1}", 1)
            try exists(hash); try exists(ver)
            // Known empty and missing, but the stored version is newer: nothing written, the mark stays.
            _ = try redis.command(["HSET", ver, "~empty", "1", "BTC", CacheVersion.of(5)])
            try set("BTC", "{\"v\":4}", 4)
            try exists(hash); try field(ver, "~empty")
            // Known empty and missing, a newer version: written, and the hash is no longer known empty.
            try set("BTC", "{\"v\":6}", 6)
            try field(hash, "BTC"); try field(ver, "BTC"); try field(ver, "~empty")
            // Present: an older version is ignored, an equal or newer one written; a stale mark is cleared.
            try set("BTC", "{\"v\":3}", 3)
            try field(hash, "BTC")
            _ = try redis.command(["HSET", ver, "~empty", "1"])
            try set("ETH", "{\"v\":7}", 7)
            try field(hash, "ETH"); try field(ver, "~empty")
            try set("BTC", "{\"v\":6b}", 6)
            try field(hash, "BTC")
            // Both keys carry the TTL.
            for key in [hash, ver] { seen.append("ttl set: \((try redis.command(["TTL", key]).integer ?? 0) > 0)") }
            return seen
        }
        #expect(seen == [
            "set BTC@1 -> 0", "hash exists: false", "ver exists: false",
            "set BTC@4 -> 1", "hash exists: false", "ver.~empty = 1",
            "set BTC@6 -> 1", "hash.BTC = {\"v\":6}", "ver.BTC = \(CacheVersion.of(6))", "ver.~empty = nil",
            "set BTC@3 -> 1", "hash.BTC = {\"v\":6}",
            "set ETH@7 -> 1", "hash.ETH = {\"v\":7}", "ver.~empty = nil",
            "set BTC@6 -> 1", "hash.BTC = {\"v\":6b}",
            "ttl set: true", "ttl set: true",
        ])
    }
}
