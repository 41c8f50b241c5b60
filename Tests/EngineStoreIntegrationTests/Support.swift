import EngineStoreClient
@testable import EngineStoreServer
import Foundation
import Glibc
import Hiredis
import LibPQ
import Logging
import Synchronization
import TestHarness

/// A server on its own fresh database and Redis namespace, against the shared throwaway services.
struct RunningServer {
    let server: EngineStoreServer
    let socketPath: String
    let postgresURL: String
    let namespace: String
    let redisURL: String

    static func start(database: String? = nil, services given: TestServices? = nil, namespace: String? = nil,
                      logger givenLogger: Logger? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> RunningServer {
        let shared = try await TestServices.shared()
        let services = given ?? shared
        let db: String
        if let database { db = database } else { db = try await offPool { try services.createDatabase() } }
        let namespace = namespace ?? shared.uniqueNamespace()
        let socket = "/tmp/es-\(UInt32.random(in: 0...UInt32.max)).sock"
        var config = ServerConfiguration(socketPath: socket, postgresURL: db, redis: RedisEndpoint(url: services.redisURL)!)
        config.namespace = namespace
        config.postgresConnections = 2
        configure(&config)
        var logger = givenLogger ?? Logger(label: "test-server")
        if givenLogger == nil { logger.logLevel = .warning }
        let server = try EngineStoreServer(configuration: config, logger: logger)
        try await server.startAsync()
        // The warm-up rebuilds every key from Postgres. One that a busy host delayed into the test
        // refilled a key the test had just deleted to force a miss (a CI failure): wait for the
        // maintenance thread's first turn, which warms up when both services answer.
        if config.hydrateOnStart {
            _ = await eventually(timeout: .seconds(30)) { server.stats.maintenancePasses.load(ordering: .relaxed) > 0 }
        }
        return RunningServer(server: server, socketPath: socket, postgresURL: db, namespace: namespace, redisURL: services.redisURL)
    }

    func stop() async {
        server.shutdown()
        await server.stoppedAsync()
    }

    /// A client with a 30 s default deadline: the suite runs every test at once, each with its own
    /// Postgres and Redis, on as few as two cores, where a 2 MiB write or a cold first call has missed
    /// the library's 5 s default. Tests of deadlines set their own.
    func client() -> EngineStoreClient {
        var config = ClientConfiguration(socketPath: socketPath)
        config.defaultTimeout = .seconds(30)
        return EngineStoreClient(configuration: config)
    }

    func postgres() throws -> PGConnection { try PGConnection(conninfo: postgresURL) }
    func redis() throws -> RedisConnection { try RedisConnection(endpoint: RedisEndpoint(url: redisURL)!) }

    /// Whether every cache write owed has been done (the outbox is empty). A test that deletes a key to
    /// force a Postgres read waits for this first: a relay rebuild still pending would recreate the key.
    func cacheSettled() async throws -> Bool {
        let pg = try postgres()
        return try await eventually { try pg.exec("SELECT count(*) FROM engine_store_outbox").int(0, 0) == 0 }
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held. The
/// default is generous: a passing poll returns at once, and a loaded 2-core CI machine is slow.
func eventually(timeout: Duration = .seconds(15), _ condition: () throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

/// `eventually` for conditions that need to await (an RPC, say).
func eventuallyAsync(timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// A bare socket for speaking (and mis-speaking) the protocol byte by byte.
final class RawConnection {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw EngineStoreError(code: .unavailable, message: "connect failed") }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func hello() throws {
        send(Frame.encode(header: FrameHeader(kind: .request, method: 1, requestID: 1), message: HelloRequest()))
        guard let f = try readFrame(), f.header.kind == .response else {
            throw EngineStoreError(code: .internalError, message: "no HelloOk")
        }
    }

    /// Sends one request and reads the next frame.
    func request<M: WireMessage>(_ method: UInt16, id: UInt32, _ message: M, deadlineMs: UInt32 = 0) throws -> Frame? {
        send(Frame.encode(header: FrameHeader(kind: .request, method: method, requestID: id, deadlineMs: deadlineMs), message: message))
        return try readFrame()
    }

    /// A Ping round trip on this very connection: true when the echo for `id` comes back (it is the
    /// next frame, so nothing else was pending on the connection).
    func ping(id: UInt32) throws -> Bool {
        let token = Array("ping-\(id)".utf8)
        guard let f = try request(6, id: id, PingMessage(payload: token)),
              f.header.kind == .response, f.header.requestID == id else { return false }
        return (try? PingMessage(payload: f.payload))?.payload == token
    }

    /// The next frame, or nil when the server closed the connection.
    func readFrame() throws -> Frame? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if case .frame(let f, _) = try FrameParser.next(in: buffer[...], maxFrameBytes: .max) {
                return Frame(header: f.header, payload: Array(f.payload))
            }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 1) }
            if n <= 0 { return nil }
            buffer.append(chunk[0])
        }
    }

    /// True when the server closed its end (read returns EOF).
    func isClosedByServer() -> Bool {
        var b: UInt8 = 0
        return read(fd, &b, 1) == 0
    }
}

func errorPayload(_ frame: Frame?) -> ErrorPayload? {
    guard let frame, frame.header.kind == .error else { return nil }
    return try? ErrorPayload(payload: frame.payload)
}

func openRequest(model: String, symbol: String, key: String = UUID().uuidString, quantity: Double = 1.5) -> SavePositionRequest {
    SavePositionRequest(idempotencyKey: key, modelID: model, symbol: symbol, exchangeProvider: "hyperliquid",
                        side: .long, quantity: quantity, entryPrice: 100.25, entryTimeMs: 1_764_201_600_000,
                        leverage: 5, confidence: 0.8, riskUSD: 50)
}

/// A fresh empty database (created off the cooperative pool).
func newDatabase() async throws -> String {
    let services = try await TestServices.shared()
    return try await offPool { try services.createDatabase() }
}

/// A count that test hooks on server threads add to and the test reads.
final class SharedCount: Sendable {
    let count = Atomic<Int>(0)
}

/// Collects the lines a `LineLogHandler` writes, for tests that read the server's log.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var text: String { lines.withLock { $0.joined() } }
    var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    /// A logger writing through a `LineLogHandler` into this capture.
    func logger(format: LineLogHandler.Format = .logfmt, redactor: SecretRedactor = SecretRedactor(secrets: []),
                level: Logger.Level = .info) -> Logger {
        Logger(label: "captured") { label in
            var h = LineLogHandler(label: label, format: format, redactor: redactor, output: { self.append($0) })
            h.logLevel = level
            return h
        }
    }
}

/// The `event_id` of every entry of a stream, in order.
func streamEventIDs(_ redis: RedisConnection, _ key: String) throws -> [String] {
    let entries = try redis.command(["XRANGE", key, "-", "+"]).array ?? []
    return entries.compactMap { e -> String? in
        let fields = (e.array?.last?.array ?? []).compactMap { $0.text }
        guard let i = fields.firstIndex(of: "event_id"), i + 1 < fields.count else { return nil }
        return fields[i + 1]
    }
}
