import ArgumentParser
import EngineStoreClient
import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import Logging
import ServiceLifecycle

@main
struct EngineStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-store",
        abstract: "EngineStore: persistence service for LLM trading engines (Unix socket → PostgreSQL + Redis).",
        subcommands: [Serve.self, Migrate.self, Hydrate.self, Check.self],
        defaultSubcommand: Serve.self)
}

/// Options every subcommand that talks to Postgres shares.
struct PostgresOptions: ParsableArguments {
    @Option(name: .customLong("postgres"),
            help: "libpq connection string or URI (env ENGINE_STORE_POSTGRES_URL).")
    var postgresURL: String?

    func resolved() throws -> String {
        if let postgresURL { return postgresURL }
        if let env = ProcessInfo.processInfo.environment["ENGINE_STORE_POSTGRES_URL"], !env.isEmpty { return env }
        throw ValidationError("set --postgres or ENGINE_STORE_POSTGRES_URL")
    }
}

struct LogOptions: ParsableArguments {
    @Option(help: "Log line format: logfmt or json.")
    var logFormat: String = "logfmt"
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// Every line passes through `redactor`: the passwords never reach the log, also not inside an
    /// error text that libpq or hiredis echoed them into.
    func bootstrap(redacting redactor: SecretRedactor) throws -> Logger {
        guard let format = LineLogHandler.Format(rawValue: logFormat) else {
            throw ValidationError("--log-format must be logfmt or json")
        }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        LoggingSystem.bootstrap { label in
            var h = LineLogHandler(label: label, format: format, redactor: redactor)
            h.logLevel = level
            return h
        }
        return Logger(label: "engine-store")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the service on a Unix socket.")
    // Defaults come from `ServerConfiguration.defaults`, so `--help` and an unset option both show
    // the server's own defaults, never a copy that can drift.

    @Option(help: "Unix socket path (env ENGINE_STORE_SOCKET).")
    var socket: String?
    @OptionGroup var postgres: PostgresOptions
    @Option(name: .customLong("redis"),
            help: "redis://[:password@]host:port/db or unix:///path/to.sock (env ENGINE_STORE_REDIS_URL).")
    var redisURL: String?
    @Option(help: "Prefix of every Redis key.")
    var namespace: String = ServerConfiguration.defaults.namespace
    @Option(help: "Postgres connections, one worker thread each (default: one per core, at least 2).")
    var postgresConnections: Int?
    @Option(help: "Maximum frame size in bytes, advertised to clients.")
    var maxFrameBytes: UInt32 = ServerConfiguration.defaults.maxFrameBytes
    @Option(help: "Maximum open client connections.")
    var maxConnections: Int = ServerConfiguration.defaults.maxConnections
    @Option(help: "Maximum in-flight requests per connection (back-pressure beyond).")
    var maxInFlight: Int = ServerConfiguration.defaults.maxInFlightPerConnection
    @Option(help: "Approximate maximum length of the trade stream (XADD MAXLEN ~).")
    var streamMaxlen: Int = ServerConfiguration.defaults.streamMaxLength
    @Option(help: "Hours an idempotency key is remembered.")
    var idempotencyRetentionHours: Int = ServerConfiguration.defaults.idempotencyRetentionHours
    @Option(help: "Days of price_ticks to keep (by ts_ms); older ticks are deleted in small batches, one instance at a time (0 = keep all).")
    var tickRetentionDays: Int = ServerConfiguration.defaults.tickRetentionDays
    @Option(help: "Milliseconds a Postgres worker waits for one batch before it drops the connection and answers unavailable (0 = no limit).")
    var postgresTimeoutMs: UInt64 = ServerConfiguration.defaults.postgresTimeoutMs
    @Option(help: "Milliseconds an event time may be ahead of the server clock; later times are refused.")
    var maxClockSkewMs: Int64 = ServerConfiguration.defaults.maxClockSkewMs
    @Option(help: "Minimum milliseconds between two writes of one market-data cache key (0 = no limit).")
    var marketCacheIntervalMs: Int = ServerConfiguration.defaults.marketCacheIntervalMs
    @Option(help: "Minimum milliseconds between two stored equity snapshots of one trader (0 = no throttle).")
    var snapshotMinIntervalMs: Int64 = ServerConfiguration.defaults.snapshotMinIntervalMs
    @Option(help: "TTL seconds of the short / medium / long cache classes (proto-spec §10.12).")
    var ttlShort: Int = ServerConfiguration.defaults.ttl.short
    @Option(help: "Medium cache TTL in seconds.") var ttlMedium: Int = ServerConfiguration.defaults.ttl.medium
    @Option(help: "Long cache TTL in seconds.") var ttlLong: Int = ServerConfiguration.defaults.ttl.long
    @Option(help: "Deadline in milliseconds for requests that carry none.") var defaultDeadlineMs: UInt32 = ServerConfiguration.defaults.defaultDeadlineMs
    @Option(help: "Milliseconds a graceful shutdown waits for in-flight requests.") var shutdownGraceMs: UInt64 = ServerConfiguration.defaults.shutdownGraceMs
    @Option(help: "Most ticks accepted in one IngestPriceTicks batch.") var maxTicksPerBatch: Int = ServerConfiguration.defaults.maxTicksPerBatch
    @Option(help: "Socket file permissions (octal).")
    var socketMode: String = "0" + String(ServerConfiguration.defaults.socketMode, radix: 8)
    @Flag(help: "Allow a socket directory anyone may write to (without the sticky bit).")
    var allowWorldWritableDir = false
    @Option(name: .customLong("allow-uid"), help: "Only peers with this uid (repeatable; checked with SO_PEERCRED).")
    var allowUIDs: [UInt32] = []
    @Option(name: .customLong("allow-gid"), help: "Only peers with this gid (repeatable).")
    var allowGIDs: [UInt32] = []
    @Option(help: "Milliseconds a new connection has to finish Hello.")
    var handshakeTimeoutMs: UInt64 = ServerConfiguration.defaults.handshakeTimeoutMs
    @Option(help: "Milliseconds a started frame has to arrive completely.")
    var frameTimeoutMs: UInt64 = ServerConfiguration.defaults.frameTimeoutMs
    @Option(help: "Milliseconds an idle connection (nothing in flight, no unsent replies) is kept.")
    var idleTimeoutMs: UInt64 = ServerConfiguration.defaults.idleTimeoutMs
    @Option(help: "Unsent reply bytes per connection above which the server stops reading it (back-pressure).")
    var maxOutputBytes: Int = ServerConfiguration.defaults.maxOutputBytes
    @Option(help: "Milliseconds a connection with unsent replies may go without the peer taking a byte before it is closed.")
    var writeTimeoutMs: UInt64 = ServerConfiguration.defaults.writeTimeoutMs
    @Option(help: "Serve Prometheus metrics over HTTP on this loopback address, e.g. 127.0.0.1:9464 (off by default).")
    var metricsListen: String?
    @Flag(help: "Do not rebuild Redis from Postgres at start.")
    var noHydrate = false
    @Option(help: "Seconds between periodic consistency checks (report only; 0 = off).")
    var consistencyCheckInterval: Int = ServerConfiguration.defaults.consistencyCheckIntervalSeconds
    @Option(help: "Seconds between refreshes of nof0's materialized views (v_leaderboard, ...; 0 = off).")
    var refreshViewsInterval: Int = ServerConfiguration.defaults.refreshViewsIntervalSeconds
    @Flag(help: "Do not apply pending migrations at start.")
    var noMigrate = false
    @OptionGroup var log: LogOptions

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let socketPath = socket ?? env["ENGINE_STORE_SOCKET"] else {
            throw ValidationError("set --socket or ENGINE_STORE_SOCKET")
        }
        guard let redisString = redisURL ?? env["ENGINE_STORE_REDIS_URL"] else {
            throw ValidationError("set --redis or ENGINE_STORE_REDIS_URL")
        }
        guard let redis = RedisEndpoint(url: redisString) else {
            throw ValidationError("cannot parse Redis URL (expected redis://host:port/db or unix:///path)")
        }
        var config = ServerConfiguration(socketPath: socketPath, postgresURL: try postgres.resolved(), redis: redis)
        config.namespace = namespace
        if let postgresConnections { config.postgresConnections = max(1, postgresConnections) }
        config.maxFrameBytes = maxFrameBytes
        config.maxConnections = maxConnections
        config.maxInFlightPerConnection = maxInFlight
        config.migrate = !noMigrate
        config.streamMaxLength = streamMaxlen
        config.marketCacheIntervalMs = marketCacheIntervalMs
        config.hydrateOnStart = !noHydrate
        config.metricsListen = metricsListen
        guard ttlShort > 0, ttlMedium > 0, ttlLong > 0 else { throw ValidationError("TTLs must be positive") }
        config.ttl.short = ttlShort
        config.ttl.medium = ttlMedium
        config.ttl.long = ttlLong
        config.defaultDeadlineMs = defaultDeadlineMs
        config.shutdownGraceMs = shutdownGraceMs
        config.maxTicksPerBatch = maxTicksPerBatch
        guard let mode = UInt32(socketMode, radix: 8), mode <= 0o777 else { throw ValidationError("--socket-mode must be octal, e.g. 0660") }
        config.socketMode = mode
        config.allowWorldWritableDirectory = allowWorldWritableDir
        config.allowedUIDs = allowUIDs
        config.allowedGIDs = allowGIDs
        config.handshakeTimeoutMs = handshakeTimeoutMs
        config.frameTimeoutMs = frameTimeoutMs
        config.idleTimeoutMs = idleTimeoutMs
        guard maxOutputBytes > 0 else { throw ValidationError("--max-output-bytes must be positive") }
        config.maxOutputBytes = maxOutputBytes
        guard writeTimeoutMs > 0 else { throw ValidationError("--write-timeout-ms must be positive") }
        config.writeTimeoutMs = writeTimeoutMs
        config.consistencyCheckIntervalSeconds = consistencyCheckInterval
        guard refreshViewsInterval >= 0 else { throw ValidationError("--refresh-views-interval must not be negative") }
        config.refreshViewsIntervalSeconds = refreshViewsInterval
        config.snapshotMinIntervalMs = snapshotMinIntervalMs
        config.idempotencyRetentionHours = idempotencyRetentionHours
        guard tickRetentionDays >= 0 else { throw ValidationError("--tick-retention-days must not be negative") }
        config.tickRetentionDays = tickRetentionDays
        config.postgresTimeoutMs = postgresTimeoutMs
        guard maxClockSkewMs >= 0 else { throw ValidationError("--max-clock-skew-ms must not be negative") }
        config.maxClockSkewMs = maxClockSkewMs
        let logger = try log.bootstrap(redacting: config.secretRedactor)
        let server = try EngineStoreServer(configuration: config, logger: logger)
        do {
            try await server.startAsync()
        } catch {
            logger.critical("cannot start", metadata: ["reason": "startup_failed", "error": "\(error)"])
            throw ExitCode(78)  // EX_CONFIG
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: ServerService(server: server), successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

/// Bridges the thread-based server into ServiceLifecycle: SIGTERM/SIGINT start a graceful drain.
struct ServerService: Service {
    let server: EngineStoreServer

    func run() async throws {
        await withGracefulShutdownHandler {
            await server.stoppedAsync()
        } onGracefulShutdown: {
            server.shutdown()
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending schema migrations and exit.")

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var log: LogOptions

    func run() async throws {
        let url = try postgres.resolved()
        let logger = try log.bootstrap(redacting: SecretRedactor(connectionString: url))
        do {
            let applied = try Migrations.apply(conninfo: url)
            logger.info("migrations done", metadata: ["applied": "\(applied)", "postgres": "\(redactConnectionString(url))"])
            print(applied.isEmpty ? "schema up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
        } catch {
            logger.critical("migration failed", metadata: ["reason": "migration_failed", "error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

/// Options of the subcommands that talk to a running service.
struct SocketOptions: ParsableArguments {
    @Option(help: "Unix socket path of the running service (env ENGINE_STORE_SOCKET).")
    var socket: String?

    func client() throws -> EngineStoreClient {
        guard let path = socket ?? ProcessInfo.processInfo.environment["ENGINE_STORE_SOCKET"] else {
            throw ValidationError("set --socket or ENGINE_STORE_SOCKET")
        }
        var config = ClientConfiguration(socketPath: path)
        config.clientName = "engine-store-cli"
        return EngineStoreClient(configuration: config)
    }
}

struct Hydrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild the Redis caches from Postgres through the running service (all models, or the ones given).")

    @OptionGroup var service: SocketOptions
    @Option(name: .customLong("model"), help: "A model to rebuild (repeatable); default: all.") var models: [String] = []
    @Option(name: .customLong("trader"), help: "A trader whose state to rebuild (repeatable).") var traders: [String] = []

    func run() async throws {
        let client = try service.client()
        let r = try await client.hydrate(HydrateRequest(models: models, traders: traders))
        await client.close()
        if r.ran {
            print("hydrated \(r.models) models, \(r.keysWritten) key writes in \(r.tookMs) ms")
        } else {
            print("another instance is hydrating; nothing done")
            throw ExitCode(1)
        }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare Postgres with Redis through the running service; with --repair rewrite differing cache keys.",
        discussion: "Exit status: 0 consistent, 1 differences found (after --repair: differences that remain unrepaired).")

    @OptionGroup var service: SocketOptions
    @Option(name: .customLong("model"), help: "A model to check (repeatable); default: all.") var models: [String] = []
    @Flag(help: "Rewrite every differing cache key from Postgres (the database is never changed).") var repair = false
    @Flag(help: "Print one JSON object per difference.") var json = false

    func run() async throws {
        let client = try service.client()
        let r = try await client.checkConsistency(CheckConsistencyRequest(models: models, repair: repair))
        await client.close()
        for d in r.differences {
            if json {
                let o: [String: Any] = ["kind": d.kind, "key": d.key, "database": d.databaseValue, "cache": d.otherValue, "repaired": d.repaired]
                print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("\(d.kind) \(d.key)\(d.repaired ? " (repaired)" : "")\n  database: \(d.databaseValue)\n  cache:    \(d.otherValue)")
            }
        }
        if !json { print("checked \(r.checked), differences \(r.differences.count)") }
        if r.differences.contains(where: { !$0.repaired }) { throw ExitCode(1) }
    }
}
