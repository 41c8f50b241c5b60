import EngineStoreWire
import Foundation
import Hiredis

/// The read pattern every read RPC follows: one Redis command; if it yields an answer, that is a hit;
/// otherwise (missing key, undecodable value, Redis down) Postgres answers and refills the cache.
struct CachedRead {
    let context: ServiceContext

    func run(_ reply: ReplyTarget, family: String, command: [String],
             fromCache: @escaping @Sendable (RedisReply) -> [UInt8]?,
             fromPostgres: @escaping @Sendable (PostgresSession) throws -> JobOutcome) {
        let context = self.context
        context.reader.submit { redis in
            if let redis, let cached = redis.read(command), let payload = fromCache(cached) {
                context.metrics.cacheRead(family: family, hit: true)
                reply.sendPayload(payload)
                return
            }
            context.metrics.cacheRead(family: family, hit: false)
            context.postgres.submit(ReadJob(deadlineNanos: reply.deadlineNanos, reply: reply, body: fromPostgres))
        }
    }
}

/// Parses a JSON object (nil for anything else): how every store reads its cached documents back.
func jsonObject(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

extension Dictionary where Key == String, Value == Any {
    func double(_ k: String) -> Double? { (self[k] as? NSNumber)?.doubleValue }
    func int64(_ k: String) -> Int64? { (self[k] as? NSNumber)?.int64Value }
    func string(_ k: String) -> String? { self[k] as? String }
    func bool(_ k: String) -> Bool? { (self[k] as? NSNumber)?.boolValue }
    /// A nested value re-serialised as compact JSON text.
    func jsonText(_ k: String) -> String? {
        guard let v = self[k], !(v is NSNull), JSONSerialization.isValidJSONObject(v),
              let data = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
