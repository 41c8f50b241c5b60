@testable import EngineStoreServer
import Hiredis
import TestHarness
import Testing

/// The script behind every direct position write (CacheScripts.positionSet), on a real Redis: a
/// missing hash is declined unless known empty, an older version never replaces a newer one, and the
/// known-empty mark goes exactly when the hash exists again.
@Suite struct PositionScriptTests {
    /// Runs `steps` off the cooperative pool (hiredis blocks) on a fresh positions hash and its version
    /// hash; each step notes what it saw, in order.
    func observe(_ steps: @escaping @Sendable (_ redis: RedisConnection, _ hash: String, _ ver: String,
                                               _ seen: inout [String]) throws -> Void) async throws -> [String] {
        let services = try await TestServices.shared()
        let hash = services.uniqueNamespace() + "positions:m"
        return try await offPool {
            let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
            var seen: [String] = []
            try steps(redis, hash, hash + ":v", &seen)
            return seen
        }
    }

    @Test func writesFollowTheVersionAndTheKnownEmptyMark() async throws {
        let seen = try await observe { redis, hash, ver, seen in
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

    /// Several fields in one call (`positionSets`, a batch's saves of one model): each field follows
    /// its own version, the hash is declined or built as a whole, and the mark goes as for one field.
    @Test func severalFieldsInOneCallEachFollowTheirVersion() async throws {
        let seen = try await observe { redis, hash, ver, seen in
            func set(_ fields: [(String, Int64)]) throws {
                let m = CacheMutation.positionSets(key: hash, versionKey: ver, fields: fields.map { f in
                    (field: f.0, version: CacheVersion.of(f.1), value: "{\"v\":\(f.1)}")
                }, ttlSeconds: 60)
                let label = fields.map { "\($0.0)@\($0.1)" }.joined(separator: ",")
                seen.append("set \(label) -> \(try redis.pipeline(m.commands).last?.integer.map(String.init) ?? "nil")")
            }
            func hashFields() throws {
                let all = (try redis.command(["HGETALL", hash]).array ?? []).compactMap(\.text)
                let pairs = stride(from: 0, to: all.count - 1, by: 2).map { "\(all[$0])=\(all[$0 + 1])" }.sorted()
                seen.append("hash: " + pairs.joined(separator: " "))
            }
            // Missing and not known empty: declined, nothing written.
            try set([("BTC", 1), ("ETH", 1)])
            seen.append("hash exists: \(try redis.command(["EXISTS", hash]).integer == 1)")
            // Known empty: every field written, the mark cleared.
            _ = try redis.command(["HSET", ver, "~empty", "1", "ETH", CacheVersion.of(5)])
            try set([("BTC", 2), ("ETH", 4), ("SOL", 3)])  // ETH's stored version 5 is newer: kept out
            try hashFields()
            seen.append("ver.~empty = \(try redis.command(["HGET", ver, "~empty"]).text ?? "nil")")
            // Present: the newer fields written, the older one left; versions follow.
            try set([("BTC", 1), ("SOL", 9), ("ETH", 6)])
            try hashFields()
            let versions = try redis.command(["HMGET", ver, "BTC", "ETH", "SOL"]).array?.compactMap(\.text) ?? []
            seen.append("versions: \(versions == [CacheVersion.of(2), CacheVersion.of(6), CacheVersion.of(9)])")
            // Every field older: nothing written, still answered 1, TTLs kept.
            try set([("BTC", 1), ("SOL", 2)])
            try hashFields()
            for key in [hash, ver] { seen.append("ttl set: \((try redis.command(["TTL", key]).integer ?? 0) > 0)") }
        }
        #expect(seen == [
            "set BTC@1,ETH@1 -> 0", "hash exists: false",
            "set BTC@2,ETH@4,SOL@3 -> 1", "hash: BTC={\"v\":2} SOL={\"v\":3}", "ver.~empty = nil",
            "set BTC@1,SOL@9,ETH@6 -> 1", "hash: BTC={\"v\":2} ETH={\"v\":6} SOL={\"v\":9}", "versions: true",
            "set BTC@1,SOL@2 -> 1", "hash: BTC={\"v\":2} ETH={\"v\":6} SOL={\"v\":9}",
            "ttl set: true", "ttl set: true",
        ])
    }
}
