import Foundation
import Hiredis
import LibPQ
import Logging

/// The maintenance thread's own Postgres and Redis connections, reconnected on demand with a fixed
/// wait after a failed attempt. Lives on that thread only; every maintenance job shares it.
final class MaintenanceConnections {
    /// Reconnect waits after a failed attempt (fixed: initial == max).
    static let postgresRetryMs: UInt64 = 1000
    static let redisRetryMs: UInt64 = 250
    static let postgresConnectTimeoutSeconds = 3
    static let redisTimeoutMs = 2000

    private let conninfo: String
    private let endpoint: RedisEndpoint
    let logger: Logger
    private var session: PostgresSession?
    private var redis: RedisConnection?
    private var postgresRetry = Backoff(initialMs: postgresRetryMs, maxMs: postgresRetryMs)
    private var redisRetry = Backoff(initialMs: redisRetryMs, maxMs: redisRetryMs)

    init(conninfo: String, redis: RedisEndpoint, logger: Logger) {
        self.conninfo = conninfo
        self.endpoint = redis
        self.logger = logger
    }

    func postgres() -> PostgresSession? {
        if let session { return session }
        guard postgresRetry.isDue(monotonicNanos()) else { return nil }
        do {
            let connection = try PGConnection(conninfo: conninfo, connectTimeoutSeconds: Self.postgresConnectTimeoutSeconds,
                                              applicationName: "engine-store-maintenance")
            // Outbox clean-up and relay commits need no WAL flush of their own: losing one in a
            // crash only means a key is rebuilt once more (at least once). Keeps them off the
            // fsync path that acknowledged writes wait on.
            try connection.exec("SET synchronous_commit TO off")
            session = PostgresSession(connection: connection)
        } catch {
            postgresRetry.next(now: monotonicNanos())
        }
        return session
    }

    func redisConnection() -> RedisConnection? {
        if let redis, !redis.isBroken { return redis }
        redis = nil
        guard redisRetry.isDue(monotonicNanos()) else { return nil }
        do {
            redis = try RedisConnection(endpoint: endpoint, timeoutMs: Self.redisTimeoutMs)
        } catch {
            redisRetry.next(now: monotonicNanos())
        }
        return redis
    }

    /// Drops a connection the error broke, and logs the failed step.
    func failed(_ error: any Error, _ what: String) {
        if let e = error as? PGError, e.kind == .connection { session = nil }
        if redis?.isBroken == true { redis = nil }
        logger.warning("cache maintenance step failed", metadata: ["reason": "maintenance_failed", "step": "\(what)", "error": "\(error)"])
    }

    /// Sends the mutations; throws unless Redis confirmed every command (an error reply such as
    /// OOM or READONLY leaves the caller's outbox rows in place).
    func apply(_ mutations: [CacheMutation], _ r: RedisConnection) throws -> Int {
        guard !mutations.isEmpty else { return 0 }
        if case .refused(let e) = try r.apply([mutations])[0] { throw RedisRefused(message: e) }
        return mutations.count
    }
}

struct RedisRefused: Error, CustomStringConvertible {
    let message: String
    var description: String { "redis refused a command: \(message)" }
}
