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
        let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
        let hash = services.uniqueNamespace() + "positions:m"
        let ver = hash + ":v"
        func set(_ field: String, _ value: String, _ version: Int64) throws -> Int64? {
            let m = CacheMutation.positionSet(key: hash, versionKey: ver, field: field, value: value,
                                              version: CacheVersion.of(version), ttlSeconds: 60)
            return try redis.pipeline(m.commands).last?.integer
        }
        func field(_ key: String, _ name: String) throws -> String? { try redis.command(["HGET", key, name]).text }
        func exists(_ key: String) throws -> Bool { try redis.command(["EXISTS", key]).integer == 1 }

        // Missing and not known empty: declined, nothing written (the relay builds the hash whole).
        #expect(try set("BTC", "{\"v\":1}", 1) == 0)
        #expect(try !exists(hash) && !exists(ver))

        // Known empty and missing, but the stored version is newer: nothing written, the mark stays.
        _ = try redis.command(["HSET", ver, "~empty", "1", "BTC", CacheVersion.of(5)])
        #expect(try set("BTC", "{\"v\":4}", 4) == 1)
        #expect(try !exists(hash))
        #expect(try field(ver, "~empty") == "1")

        // Known empty and missing, a newer version: written, and the hash is no longer known empty.
        #expect(try set("BTC", "{\"v\":6}", 6) == 1)
        #expect(try field(hash, "BTC") == "{\"v\":6}")
        #expect(try field(ver, "BTC") == CacheVersion.of(6))
        #expect(try field(ver, "~empty") == nil)

        // Present: an older version is ignored, an equal or newer one written; a stale mark is cleared.
        #expect(try set("BTC", "{\"v\":3}", 3) == 1)
        #expect(try field(hash, "BTC") == "{\"v\":6}")
        _ = try redis.command(["HSET", ver, "~empty", "1"])
        #expect(try set("ETH", "{\"v\":7}", 7) == 1)
        #expect(try field(hash, "ETH") == "{\"v\":7}")
        #expect(try field(ver, "~empty") == nil)
        #expect(try set("BTC", "{\"v\":6b}", 6) == 1)
        #expect(try field(hash, "BTC") == "{\"v\":6b}")

        // Both keys carry the TTL.
        #expect(try (redis.command(["TTL", hash]).integer ?? 0) > 0)
        #expect(try (redis.command(["TTL", ver]).integer ?? 0) > 0)
    }
}
