import EngineStoreWire
import Foundation
import Hiredis
import LibPQ

/// Everything the server needs to run. Defaults are the documented ones.
public struct ServerConfiguration: Sendable {
    public var socketPath: String
    /// libpq connection string (URI or keyword form). Never logged unredacted.
    public var postgresURL: String
    public var redis: RedisEndpoint
    /// Prefix of every Redis key (default "nof0:"; proto-spec §10.12, Keys).
    public var namespace: String = "nof0:"
    public var ttl = CacheTTL()
    /// Postgres connections, each on its own worker thread. One per core (at least 2): more
    /// backends than cores only contend, and fewer workers make bigger group-commit batches
    /// (measured on 2 cores: 2 → ~8,300–8,800 SavePosition/s, 4 → ~7,200).
    public var postgresConnections: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)
    /// Most requests one worker commits in one transaction (group commit).
    public var maxBatch: Int = 64
    public var maxFrameBytes: UInt32 = WireLimits.defaultMaxFrameBytes
    public var maxConnections: Int = 4096
    public var maxInFlightPerConnection: Int = 1024
    /// Applied when a request carries deadline 0.
    public var defaultDeadlineMs: UInt32 = 30_000
    /// How long a graceful shutdown waits for in-flight requests.
    public var shutdownGraceMs: UInt64 = 10_000
    /// Apply pending migrations at start.
    public var migrate: Bool = true
    public var instanceID: String
    /// Approximate cap of the trade stream (XADD MAXLEN ~).
    public var streamMaxLength: Int = 100_000
    /// Minimum time between two stored equity snapshots of one trader (0 disables the throttle).
    public var snapshotMinIntervalMs: Int64 = 300_000
    /// Market-data cache keys are written at most once per this interval (0 = every write).
    public var marketCacheIntervalMs: Int = 1000
    /// Most ticks accepted in one IngestPriceTicks batch.
    public var maxTicksPerBatch: Int = 50_000
    /// Permissions of the socket file.
    public var socketMode: UInt32 = 0o660
    /// Accept a socket directory that anyone may write to (without the sticky bit). Off: such a
    /// directory lets another user replace the socket, so start-up refuses it.
    public var allowWorldWritableDirectory = false
    /// Peers allowed to connect, checked with SO_PEERCRED before the handshake; both empty = anyone
    /// who can open the socket file.
    public var allowedUIDs: [UInt32] = []
    public var allowedGIDs: [UInt32] = []
    /// A connection must finish Hello within this time.
    public var handshakeTimeoutMs: UInt64 = 10_000
    /// A frame must arrive completely within this time of its first byte (a stalled half frame is dropped).
    public var frameTimeoutMs: UInt64 = 10_000
    /// A connection with nothing in flight and no bytes for this long is closed (clients reconnect).
    public var idleTimeoutMs: UInt64 = 600_000
    /// Unsent reply bytes one connection may hold before the server stops reading it (back-pressure:
    /// no new requests are parsed, so no new replies are made). Replies of requests already in flight
    /// are still queued, so the most a connection holds is this plus its in-flight replies
    /// (at most `maxInFlightPerConnection` × the largest reply). 1 MiB: 100 clients that never read
    /// cost ~100 MiB, and a client that reads is never near it (the kernel buffers ~200 KiB more).
    public var maxOutputBytes: Int = 1 << 20
    /// A connection with output pending and no byte taken by the peer for this long is closed.
    public var writeTimeoutMs: UInt64 = 30_000
    /// Serve Prometheus metrics over HTTP on this loopback address ("127.0.0.1:PORT"); nil = off.
    public var metricsListen: String?
    /// Rebuild Redis from Postgres at start (under a Redis lock shared by all instances).
    public var hydrateOnStart: Bool = true
    /// Seconds between periodic consistency checks (report only); 0 disables them.
    public var consistencyCheckIntervalSeconds: Int = 300
    /// Seconds between refreshes of nof0's materialized views (v_leaderboard, …); 0 disables them.
    public var refreshViewsIntervalSeconds: Int = 60
    /// Outbox rows younger than this are left to the direct path before the relay takes them.
    public var outboxGraceMs: Int = 2000
    /// How long a worker waits for Postgres to answer one batch before it drops the connection and
    /// answers `unavailable` (a hung server must not hold requests until their deadlines); 0 = no limit.
    public var postgresTimeoutMs: UInt64 = 2000
    /// How long idempotency keys are remembered.
    public var idempotencyRetentionHours: Int = 24
    /// How often keys older than the retention are deleted (the first time after at most a minute).
    public var idempotencyPurgeIntervalMs: UInt64 = 600_000
    /// `price_ticks` whose `ts_ms` is older than this many days are deleted in small batches by the
    /// maintenance thread, one instance at a time; 0 keeps every tick (nof0's behaviour).
    public var tickRetentionDays: Int = 0
    /// How often the tick retention pass runs (a pass deletes at most a bounded number of batches).
    public var tickRetentionIntervalMs: UInt64 = 60_000
    /// Event times (ticks, snapshots, analytics, entries and exits, trade events, decisions, trader
    /// state) more than this far ahead of the server's clock are refused with `invalid_argument`.
    public var maxClockSkewMs: Int64 = 300_000
    /// Pause points for interleaving tests; empty in production.
    public var testHooks = TestHooks()
    /// Health counts Postgres or Redis as down when its ping has not answered within this time (or
    /// half the request's remaining deadline, if shorter), so Health answers even while one hangs.
    public var healthTimeoutMs: UInt64 = 1000

    public init(socketPath: String, postgresURL: String, redis: RedisEndpoint, instanceID: String? = nil) {
        self.socketPath = socketPath
        self.postgresURL = postgresURL
        self.redis = redis
        self.instanceID = instanceID ?? ServerConfiguration.makeInstanceID()
    }

    /// An instance with every default and placeholder endpoints: the one source of the defaults that
    /// the `engine-store serve` options show and fall back to (read its tunables, not its endpoints).
    public static let defaults = ServerConfiguration(
        socketPath: "", postgresURL: "", redis: RedisEndpoint(address: .unix(path: "")), instanceID: "defaults")

    /// The Postgres and Redis passwords (as written and as decoded), for masking in every log line.
    public var secretRedactor: SecretRedactor {
        SecretRedactor(connectionString: postgresURL).adding(SecretRedactor(secrets: redis.password.map { [$0] } ?? []))
    }

    static func makeInstanceID() -> String {
        var rng = SystemRandomNumberGenerator()
        let n = rng.next() as UInt64
        return String(n & 0xffff_ffff, radix: 16)
    }
}

/// TTL classes (proto-spec §10.12): short 10 s, medium 60 s, long 300 s.
public struct CacheTTL: Sendable {
    public var short: Int = 10
    public var medium: Int = 60
    public var long: Int = 300
    public init() {}

    /// `nof0:analytics:<model>`: twice long.
    public var analytics: Int { long * 2 }
    /// `nof0:positions:<model>`: half of medium.
    public var positions: Int { max(1, medium / 2) }
}

public let serverVersion = "0.1.0"
