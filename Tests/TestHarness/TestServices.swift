import Foundation
import Hiredis
import LibPQ
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the test harness itself (missing binaries, a service that would not start, a bad setting).
public struct TestServicesError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { "TestHarness: \(message)" }
}

/// A real PostgreSQL and Redis for integration tests.
///
/// By default the harness starts a throwaway PostgreSQL cluster and a Redis server on Unix sockets in a
/// fresh `/tmp/engine-store-test-XXXXXX` directory, once per test process; a detached watchdog stops them and
/// removes the directory after the test process has exited. When both `ENGINE_STORE_TEST_POSTGRES_URL` and
/// `ENGINE_STORE_TEST_REDIS_URL` are set, those running services are used instead and nothing is started.
///
/// Tests share the servers: isolate with `createDatabase()` (a fresh database per test) and
/// `uniqueNamespace()` (a Redis key prefix per test). `stop…`/`start…`/`restart…` affect every test in the
/// process, so fault tests that use them should be serialized.
///
/// `shared()` sets SIGPIPE to ignored for the test process, so writing to a connection whose server went
/// away fails with an error instead of killing the process.
public final class TestServices: Sendable {
    /// Conninfo for the maintenance database "postgres" (superuser, trust auth when started locally).
    public let postgresAdminURL: String
    /// `unix:///…/redis.sock` when started locally; the given URL otherwise.
    public let redisURL: String
    /// Directory holding PostgreSQL's Unix socket; for external services the `host` of the given URL when it
    /// is a socket directory, else "".
    public let postgresSocketDir: String

    /// nil when external services are used.
    private let local: LocalCluster?
    /// Redis namespaces handed out so far, to guarantee uniqueness within the process.
    private let issuedNamespaces = Mutex<Set<String>>([])
    private static let creating = Mutex<Void>(())

    /// The one start-up of this process; concurrent callers all await the same task. A failure is cached so
    /// every test reports the same cause instead of retrying a start that cannot work.
    private static let startup = Mutex<Task<TestServices, any Error>?>(nil)

    private init(postgresAdminURL: String, redisURL: String, postgresSocketDir: String, local: LocalCluster?) {
        self.postgresAdminURL = postgresAdminURL
        self.redisURL = redisURL
        self.postgresSocketDir = postgresSocketDir
        self.local = local
    }

    /// Started once per test process (lazily, thread-safe; concurrent callers wait for the same start) and
    /// shared by all tests.
    public static func shared() async throws -> TestServices {
        let task = startup.withLock { slot -> Task<TestServices, any Error> in
            if let slot { return slot }
            // Start-up blocks (initdb, polling) for a second or more: run it on its own thread so the
            // cooperative pool stays free for the tests that are already running.
            let task = Task.detached {
                try await runOnDedicatedThread(name: "engine-store-test-services") {
                    try TestServices.make(environment: ProcessInfo.processInfo.environment)
                }
            }
            slot = task
            return task
        }
        return try await task.value
    }

    private static func make(environment env: [String: String]) throws -> TestServices {
        // hiredis writes with plain write(2): a command on a connection whose server was stopped or restarted
        // would kill the whole test process with SIGPIPE instead of failing with EPIPE. (libpq guards itself;
        // EngineStoreServer.start() does the same.)
        signal(SIGPIPE, SIG_IGN)
        let pgURL = env["ENGINE_STORE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
        let redisURL = env["ENGINE_STORE_TEST_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
        switch (pgURL, redisURL) {
        case let (pgURL?, redisURL?):
            return try external(postgresURL: pgURL, redisURL: redisURL)
        case (nil, nil):
            let cluster = try LocalCluster.start()
            return TestServices(postgresAdminURL: cluster.adminConninfo, redisURL: cluster.redisURL,
                                postgresSocketDir: cluster.pgSocketDir, local: cluster)
        default:
            throw TestServicesError(
                "only one of ENGINE_STORE_TEST_POSTGRES_URL and ENGINE_STORE_TEST_REDIS_URL is set; "
                    + "set both to use external services, or neither to start throwaway ones")
        }
    }

    private static func external(postgresURL: String, redisURL: String) throws -> TestServices {
        guard let endpoint = RedisEndpoint(url: redisURL) else {
            throw TestServicesError("ENGINE_STORE_TEST_REDIS_URL is not a redis:// or unix:// URL: \(redisURL)")
        }
        do {
            let conn = try PGConnection(conninfo: postgresURL, applicationName: "engine-store-tests")
            try conn.exec("SELECT 1")
        } catch {
            throw TestServicesError(
                "cannot reach ENGINE_STORE_TEST_POSTGRES_URL (\(redactConnectionString(postgresURL))): \(error)")
        }
        do {
            let conn = try RedisConnection(endpoint: endpoint)
            let reply = try conn.command(["PING"])
            guard reply == .status("PONG") else {
                throw TestServicesError("unexpected PING reply \(reply)")
            }
        } catch {
            throw TestServicesError("cannot reach ENGINE_STORE_TEST_REDIS_URL (\(endpoint)): \(error)")
        }
        return TestServices(postgresAdminURL: postgresURL, redisURL: redisURL,
                            postgresSocketDir: ConninfoEditing.socketDirectory(of: postgresURL) ?? "",
                            local: nil)
    }

    // MARK: - Isolation

    /// A Postgres and Redis of its own (not shared with other tests), for fault tests that stop and
    /// start them while other tests run. Cleaned up by its own watchdog after the process exits.
    public static func privateInstance() async throws -> TestServices {
        signal(SIGPIPE, SIG_IGN)
        return try await offPool {
            let c = try LocalCluster.start()
            return TestServices(postgresAdminURL: c.adminConninfo, redisURL: c.redisURL, postgresSocketDir: c.pgSocketDir, local: c)
        }
    }

    /// Creates a fresh empty database with a unique name and returns its libpq conninfo (keyword form
    /// "host=<sockdir> port=<port> user=<user> dbname=<name>" for the local cluster; for external services the
    /// given URL with its database replaced).
    ///
    /// `prefix` must be a plain identifier (letters, digits, `_`; at most 40 characters). Databases are not
    /// dropped: the local cluster is deleted as a whole after the test process exits.
    public func createDatabase(prefix: String = "t") throws -> String {
        try Self.validate(prefix: prefix)
        var attempt = 0
        while true {
            attempt += 1
            let name = "\(prefix)_\(randomHex(bytes: 6))"
            do {
                // One CREATE DATABASE at a time: dozens at once (every test makes its own) swamp a
                // 2-core machine's Postgres until new connections time out.
                try Self.creating.withLock { _ in
                    let admin = try PGConnection(conninfo: postgresAdminURL, connectTimeoutSeconds: 60,
                                                 applicationName: "engine-store-tests")
                    // The name is ours (validated prefix + hex), so quoting it is safe.
                    try admin.exec("CREATE DATABASE \"\(name)\"")
                }
                return conninfo(forDatabase: name)
            } catch let error as PGError where error.sqlState == "42P04" && attempt < 5 {
                continue  // duplicate_database: another run picked the same name; draw again
            } catch {
                throw TestServicesError("CREATE DATABASE \(name) failed: \(error)")
            }
        }
    }

    /// A unique Redis key namespace like "t3f9a1c0d2e4b:" for test isolation (tests share one Redis).
    public func uniqueNamespace() -> String {
        issuedNamespaces.withLock { issued in
            while true {
                let ns = "t\(randomHex(bytes: 6)):"
                if issued.insert(ns).inserted { return ns }
            }
        }
    }

    private func conninfo(forDatabase name: String) -> String {
        if let local {
            return local.conninfo(database: name)
        }
        return ConninfoEditing.replacingDatabase(in: postgresAdminURL, with: name)
    }

    private static func validate(prefix: String) throws {
        let ok = !prefix.isEmpty && prefix.utf8.count <= 40
            && prefix.utf8.allSatisfy { c in
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                    || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
            }
        guard ok else {
            throw TestServicesError("database prefix must be 1-40 letters, digits or '_', got \"\(prefix)\"")
        }
    }

    // MARK: - Fault injection (local services only)

    /// Stops Redis (SHUTDOWN NOSAVE, then SIGTERM/SIGKILL if needed) and starts it again on the same socket,
    /// returning once it answers PING.
    public func restartRedis() throws {
        let cluster = try requireLocal("restartRedis")
        try cluster.stopRedis()
        try cluster.startRedis()
    }

    /// Stops Redis and waits until the process has exited. Does nothing when it is already stopped.
    public func stopRedis() throws { try requireLocal("stopRedis").stopRedis() }

    /// Starts Redis on the same socket and waits until it answers PING. Does nothing when it is running.
    public func startRedis() throws { try requireLocal("startRedis").startRedis() }

    /// Stops PostgreSQL (`pg_ctl stop -m fast`) and waits until the postmaster has exited.
    public func stopPostgres() throws { try requireLocal("stopPostgres").stopPostgres() }

    /// Starts PostgreSQL on the same data directory and socket and waits until it accepts connections.
    public func startPostgres() throws { try requireLocal("startPostgres").startPostgres() }

    /// `stopPostgres()` then `startPostgres()`.
    public func restartPostgres() throws {
        let cluster = try requireLocal("restartPostgres")
        try cluster.stopPostgres()
        try cluster.startPostgres()
    }

    /// Hangs PostgreSQL: SIGSTOP to the postmaster and all its processes (backends included), so
    /// connections stay open and nothing answers. Undo with `resumePostgres()`, always (in a `defer`).
    public func pausePostgres() throws { try requireLocal("pausePostgres").signalPostgres(SIGSTOP) }

    /// SIGCONT to the postmaster and all its processes.
    public func resumePostgres() throws { try requireLocal("resumePostgres").signalPostgres(SIGCONT) }

    /// Hangs Redis (SIGSTOP): connections stay open and nothing answers. Undo with `resumeRedis()`.
    public func pauseRedis() throws { try requireLocal("pauseRedis").signalRedis(SIGSTOP) }

    /// SIGCONT to Redis.
    public func resumeRedis() throws { try requireLocal("resumeRedis").signalRedis(SIGCONT) }

    private func requireLocal(_ operation: String) throws -> LocalCluster {
        guard let local else {
            throw TestServicesError(
                "\(operation) needs the harness's own services, but ENGINE_STORE_TEST_POSTGRES_URL / "
                    + "ENGINE_STORE_TEST_REDIS_URL point at external ones it cannot stop or start; "
                    + "unset both to run fault tests")
        }
        return local
    }
}

/// Runs blocking `body` on a new thread and resumes the caller with its result.
public func runOnDedicatedThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = name
        thread.start()
    }
}

/// `bytes` random bytes as lowercase hex.
func randomHex(bytes: Int) -> String {
    var g = SystemRandomNumberGenerator()
    var s = ""
    for _ in 0..<bytes {
        let b = UInt8.random(in: 0...255, using: &g)
        s += String(b >> 4, radix: 16) + String(b & 0xF, radix: 16)
    }
    return s
}

/// Small edits of libpq connection strings, for external services.
enum ConninfoEditing {
    static func isURI(_ s: String) -> Bool {
        s.hasPrefix("postgresql://") || s.hasPrefix("postgres://")
    }

    /// The same server with another database: the URI's path replaced, or ` dbname=<name>` appended to the
    /// keyword form (libpq keeps the last value of a repeated keyword).
    static func replacingDatabase(in conninfo: String, with name: String) -> String {
        guard isURI(conninfo), let schemeEnd = conninfo.range(of: "://") else {
            return conninfo.trimmingCharacters(in: .whitespaces) + " dbname=\(name)"
        }
        let rest = conninfo[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let pathEnd = rest[authorityEnd...].firstIndex(of: "?") ?? rest.endIndex
        return String(conninfo[..<authorityEnd]) + "/" + name + String(conninfo[pathEnd...])
    }

    /// The `host` setting when it names a socket directory (starts with "/").
    static func socketDirectory(of conninfo: String) -> String? {
        var host: String?
        if isURI(conninfo) {
            if let q = conninfo.firstIndex(of: "?") {
                for pair in conninfo[conninfo.index(after: q)...].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    if kv.count == 2, kv[0] == "host" { host = kv[1].removingPercentEncoding ?? kv[1] }
                }
            }
            if host == nil, let schemeEnd = conninfo.range(of: "://") {
                var authority = conninfo[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" }
                if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
                let h = String(authority.prefix { $0 != ":" && $0 != "," })
                host = h.removingPercentEncoding ?? h
            }
        } else {
            for token in conninfo.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
                if token.hasPrefix("host=") { host = String(token.dropFirst("host=".count)) }
            }
        }
        guard let host, host.hasPrefix("/") else { return nil }
        return host
    }
}
