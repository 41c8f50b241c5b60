import EngineStoreClient
@testable import EngineStoreServer
import Foundation
import Glibc
import Hiredis
import Logging
import Synchronization
import TestHarness
import Testing

/// Per-connection and per-process limits on a live server (issue 13, items 1–4): connections,
/// in-flight back-pressure, idle timeout, the output cap, the write timeout, a lagging reader, and
/// descriptor exhaustion. Figures come from the server's own metrics (Stats), log lines from a
/// capturing log handler.
@Suite struct ResourceLimitsTests {
    // MARK: connections, in flight, idle

    @Test func connectionsBeyondMaxConnectionsAreRefusedWithResourceExhausted() async throws {
        let s = try await LimitServer.start { $0.maxConnections = 3 }
        let outcome: (ErrorCode?, Bool, Bool) = try await offPool {
            let held = try (0..<3).map { _ in try RawConnection(path: s.socketPath) }
            for c in held { try c.hello() }
            let extra = try RawConnection(path: s.socketPath)
            let code = errorPayload(try extra.readFrame())?.errorCode
            let closed = extra.isClosedByServer()
            // A slot freed is a slot given: the next connection gets in once the server saw the close.
            var admitted = false
            shutdown(held[0].fd, Int32(SHUT_RDWR))
            let end = monotonicNanos() + 3_000_000_000
            while !admitted && monotonicNanos() < end {
                let again = try RawConnection(path: s.socketPath)
                admitted = (try? again.hello()) != nil
            }
            let served = try held[1].ping(id: 9)
            return (code, closed, admitted && served)
        }
        #expect(outcome.0 == .resourceExhausted)
        #expect(outcome.1)
        #expect(outcome.2)
        #expect(try await s.eventuallyMetric("connections_refused_total", ["reason=\"connection_limit\""]) { $0 >= 1 })
        // One line for the burst (a second one if a Stats client of ours came while the slots were full).
        #expect((1...2).contains(s.logs.count { $0.contains("reason=connection_limit") }))
        await s.stop()
    }

    /// With `max-in-flight` 2 and the Postgres worker held after its commit, a connection that sent six
    /// requests has exactly two in flight: the other four stay unread. Released, all six are answered.
    @Test func inFlightLimitStopsReadingUntilRepliesFreeSlots() async throws {
        let held = Atomic<Int>(0)
        let open = Atomic<Bool>(false)
        let s = try await LimitServer.start {
            $0.maxInFlightPerConnection = 2
            $0.testHooks.workerDidCommit = { keys in
                guard keys.contains(where: { $0.hasSuffix("positions:bp") }) else { return }
                held.add(1, ordering: .relaxed)
                while !open.load(ordering: .relaxed) { usleep(1000) }
            }
        }
        defer { open.store(true, ordering: .relaxed) }
        let box = RawBox(try RawConnection(path: s.socketPath))
        let raw = box.raw
        try await offPool { try box.raw.hello() }
        var burst: [UInt8] = []
        for i in 0..<6 {
            burst += Frame.encode(header: FrameHeader(kind: .request, method: 16, requestID: UInt32(10 + i)),
                                  message: openRequest(model: "bp", symbol: "S\(i)"))
        }
        raw.send(burst)
        #expect(await eventually { held.load(ordering: .relaxed) >= 1 })
        // Two of ours (three if the sample also caught one of the Stats requests reading it).
        #expect(try await s.eventuallyMetric("in_flight_requests") { $0 > 0 })
        #expect(try await (2...3).contains(s.metric("in_flight_requests") ?? -1))
        open.store(true, ordering: .relaxed)
        let ids: [UInt32] = try await offPool {
            try (0..<6).compactMap { _ in try box.raw.readFrame() }.filter { $0.header.kind == .response }.map(\.header.requestID)
        }
        #expect(ids.sorted() == Array(10..<16))
        await s.stop()
    }

    /// The metric is read over Stats connections, each idle between its connect and its first frame.
    /// On a loaded host (CI runs the suites side by side) that once took over 300 ms and, another
    /// time, past the 1.5 s timeout: those were closed too, so the count may pass 1. Our connection's
    /// close is checked on the connection itself; the metric must count at least it.
    @Test func idleConnectionIsClosedAfterTheIdleTimeout() async throws {
        let idleMs: UInt64 = 1500
        let s = try await LimitServer.start { $0.idleTimeoutMs = idleMs }
        let started = ContinuousClock.now
        let closed: Bool = try await offPool {
            let raw = try RawConnection(path: s.socketPath)
            try raw.hello()
            return raw.isClosedByServer()
        }
        #expect(closed)
        #expect(ContinuousClock.now - started >= .milliseconds(Int64(idleMs)))
        #expect(try await s.eventuallyMetric("connections_closed_total", ["reason=\"idle_timeout\""]) { $0 >= 1 })
        await s.stop()
    }

    // MARK: output

    /// A client that floods 1 KiB Pings and never reads: the server stops reading it once its unsent
    /// replies reach the cap, so what it holds stays within cap + one partly sent chunk + one reply.
    /// Other clients are served meanwhile; the memory goes when the flooder leaves.
    @Test func neverReadingFlooderIsHeldAtTheOutputCapAndOthersAreServed() async throws {
        let cap = 256 * 1024
        let s = try await LimitServer.start { $0.maxOutputBytes = cap }
        let flooder = try await offPool { try Flooder(path: s.socketPath) }
        let sent = try await s.floodUntilCapped(flooder)
        #expect(sent < 16 << 20, "back-pressure stopped the flood after \(sent) bytes")
        #expect(try await s.metric("output_capped_connections") == 1)
        let peak = try await s.metric("output_buffered_peak_bytes") ?? -1
        #expect(peak >= Double(cap))
        #expect(peak <= Double(cap + Connection.chunkBytes + flooder.frameBytes), "peak \(peak)")
        #expect(try await s.metric("output_buffered_bytes") ?? -1 <= Double(cap + flooder.frameBytes))

        let other = s.client()
        #expect(try await other.ping(Array("still here".utf8)) == Array("still here".utf8))
        _ = try await other.savePosition(openRequest(model: "flood-other", symbol: "BTC"))
        #expect(try await other.health().status == .ok)
        await other.close()

        flooder.close()
        #expect(try await s.eventuallyMetric("output_buffered_bytes") { $0 == 0 })
        #expect(try await s.eventuallyMetric("open_connections") { $0 == 1 })   // the Stats client
        await s.stop()
    }

    /// Stats requests (each reply ~100 KiB of metrics in production) without reading: requests in flight
    /// count against the cap with the largest reply their method has given, so only a few are made at
    /// a time, not `max-in-flight` (1024) of them.
    @Test func aStatsFloodIsHeldNearTheCapToo() async throws {
        let cap = 256 * 1024
        let s = try await LimitServer.start { $0.maxOutputBytes = cap }
        let reply = try await s.client().stats().utf8.count + 64
        let flooder = try await offPool { try Flooder(path: s.socketPath, stats: true) }
        _ = try await s.floodUntilCapped(flooder)
        #expect(try await s.metric("output_capped_connections") == 1)
        let peak = try await s.metric("output_buffered_peak_bytes") ?? -1
        // Up to the cap, plus what replies outgrew their estimate by (the metrics text grows as the
        // flood is counted), plus one reply.
        #expect(peak >= Double(cap) && peak <= Double(cap + 3 * reply), "peak \(peak), one reply ~\(reply)")
        #expect(try await s.metric("in_flight_requests") ?? -1 <= Double(cap / reply + 2))
        #expect(try await s.client().health().status == .ok)
        flooder.close()
        await s.stop()
    }

    /// The same flooder with a short write timeout is closed, with one log line saying why.
    @Test func neverReadingClientIsClosedAfterTheWriteTimeout() async throws {
        let s = try await LimitServer.start { $0.maxOutputBytes = 128 * 1024; $0.writeTimeoutMs = 400 }
        let flooder = try await offPool { try Flooder(path: s.socketPath) }
        _ = try await s.floodUntilCapped(flooder)
        #expect(try await s.eventuallyMetric("connections_closed_total", ["reason=\"write_timeout\""]) { $0 == 1 })
        #expect(try await offPool { flooder.readUntilClosed(timeoutMs: 3000) })
        let lines = s.logs.filter { $0.contains("reason=write_timeout") }
        #expect(lines.count == 1)
        #expect(lines.first?.contains("level=warning") == true)
        #expect(lines.first?.contains("unsent_bytes=") == true)
        #expect(try await s.eventuallyMetric("output_buffered_bytes") { $0 == 0 })
        await s.stop()
    }

    /// Pending output is not idleness: with idle 4 s and write timeout 8 s, a connection whose
    /// replies sit unread is closed by the write timeout, not before. (With idle 500 ms, and later
    /// 1.5 s, a starved host once took longer than that between the flooder's connect and its first
    /// bytes: the connection was closed as idle before it had any output, and no write timeout came.)
    @Test func aConnectionWithPendingOutputIsNotIdle() async throws {
        let s = try await LimitServer.start { $0.maxOutputBytes = 128 * 1024; $0.idleTimeoutMs = 4000; $0.writeTimeoutMs = 8000 }
        let started = ContinuousClock.now
        let flooder = try await offPool { try Flooder(path: s.socketPath) }
        _ = try await s.floodUntilCapped(flooder)
        // Closed by the write timeout at all means not by the idle timeout before (it would have come
        // first). Idle closes of our own Stats clients, slow to close on a busy machine, may happen.
        #expect(try await s.eventuallyMetric("connections_closed_total", ["reason=\"write_timeout\""]) { $0 == 1 })
        #expect(ContinuousClock.now - started >= .milliseconds(8000))
        let flooderID = s.logs.first { $0.contains("reason=write_timeout") }?.split(separator: " ").first { $0.hasPrefix("connection=") }
        #expect(flooderID != nil)
        #expect(!s.logs.contains { $0.contains("reason=idle_timeout") && $0.split(separator: " ").contains { $0 == flooderID } })
        #expect(try await offPool { flooder.readUntilClosed(timeoutMs: 3000) })
        await s.stop()
    }

    /// A reader that keeps ~1 MiB of replies unread while 16 MiB flow (the cap set far above, so only
    /// the buffer's release of sent bytes is at work): it costs what it has not read, not what was sent.
    @Test func aLaggingReaderCostsOnlyWhatItHasNotRead() async throws {
        let lag = 1 << 20
        let s = try await LimitServer.start { $0.maxOutputBytes = 64 << 20 }
        let flooder = try await offPool { try Flooder(path: s.socketPath) }
        // A deadline, not a duration: it returns once 16 MiB have moved (a host starved by six CPU
        // burners moved 15 MiB in 4 s).
        let moved = try await offPool { flooder.lag(behind: lag, total: 16 << 20, timeoutMs: 30_000) }
        #expect(moved >= 16 << 20)
        let peak = try await s.metric("output_buffered_peak_bytes") ?? -1
        #expect(peak > 0)
        #expect(peak <= Double(lag + Connection.chunkBytes), "peak \(peak)")
        flooder.close()
        await s.stop()
    }

    // MARK: descriptors

    /// Client connections stop at the descriptor budget (here set to 2): further connections are
    /// refused with `resource_exhausted`, counted, and logged once per second, not once each.
    @Test func connectionsBeyondTheDescriptorBudgetAreRefusedAndLoggedOncePerSecond() async throws {
        let s = try await LimitServer.start { $0.testHooks.descriptorBudget = 2 }
        #expect(try await s.metric("connection_limit") == 2)
        #expect(s.logs.contains { $0.contains("reason=fd_limit") && $0.contains("connection_limit=2") })
        let codes: [ErrorCode?] = try await offPool {
            let held = try (0..<2).map { _ in try RawConnection(path: s.socketPath) }
            for c in held { try c.hello() }
            var codes: [ErrorCode?] = []
            for _ in 0..<40 {
                let extra = try RawConnection(path: s.socketPath)
                codes.append(errorPayload(try extra.readFrame())?.errorCode)
                if codes.last != .resourceExhausted { break }
            }
            guard try held[0].ping(id: 3), try held[1].ping(id: 3) else { return [] }
            return codes
        }
        #expect(codes.count == 40 && codes.allSatisfy { $0 == .resourceExhausted })
        #expect(try await s.eventuallyMetric("connections_refused_total", ["reason=\"connection_limit\""]) { $0 >= 40 })
        #expect(s.logs.count { $0.contains("reason=connection_limit") } <= 2)
        await s.stop()
    }

    /// `accept` failing with EMFILE: the listener is paused 50 ms, 100 ms, 200 ms, … (no spinning),
    /// one line per second with a count, connected clients keep being served, and the waiting client
    /// gets in once descriptors are back.
    @Test func acceptPausesWithBackoffOnEMFILEWithoutSpinning() async throws {
        let failing = Atomic<Bool>(false)
        let attempts = Atomic<Int>(0)
        let times = Mutex<[UInt64]>([])
        let s = try await LimitServer.start {
            $0.testHooks.acceptWillRun = {
                guard failing.load(ordering: .relaxed) else { return 0 }
                attempts.add(1, ordering: .relaxed)
                times.withLock { $0.append(monotonicNanos()) }
                return EMFILE
            }
        }
        let existing = s.client()
        try await existing.connect()
        failing.store(true, ordering: .relaxed)
        let failedFrom = monotonicNanos()
        let waiting = RawBox(try RawConnection(path: s.socketPath))   // sits in the backlog
        #expect(await eventually { attempts.load(ordering: .relaxed) >= 5 })
        let t = times.withLock { $0 }
        // 50 + 100 + 200 + 400 ms between the first five attempts (a spinning loop makes millions).
        #expect(t[4] - t[0] >= 700_000_000, "attempts at \(t.map { ($0 - t[0]) / 1_000_000 }) ms")
        #expect(attempts.load(ordering: .relaxed) <= 6)
        #expect(try await existing.ping(Array("served".utf8)) == Array("served".utf8))
        failing.store(false, ordering: .relaxed)
        let failedSeconds = Int((monotonicNanos() - failedFrom) / 1_000_000_000)
        try await offPool { try waiting.raw.hello() }
        #expect(try await s.eventuallyMetric("connections_refused_total", ["reason=\"fd_limit\""]) { $0 >= 5 })
        // At most a line per second of failures (a slow host stretches them past the first 2 s).
        let lines = s.logs.filter { $0.contains("reason=fd_limit") && $0.contains("count=") }
        #expect(lines.count >= 1 && lines.count <= 2 + failedSeconds, "\(lines) in \(failedSeconds) s")
        await existing.close()
        await s.stop()
    }

    @Test func descriptorBudgetLeavesRoomForBackendsAndTheReserve() {
        // ulimit -n 128, 10 descriptors open at start, 2 Postgres workers: 128 - 10 - (2 + 5) - 16.
        #expect(DescriptorLimits.connectionBudget(softLimit: 128, openNow: 10, postgresConnections: 2) == 95)
        #expect(DescriptorLimits.connectionBudget(softLimit: 20, openNow: 10, postgresConnections: 2) == 0)
        #expect(DescriptorLimits.needed(maxConnections: 4096, postgresConnections: 2) == 4096 + 7 + 16 + 16)
        let now = DescriptorLimits.current()
        #expect(now.soft <= now.hard)
        #expect(DescriptorLimits.openDescriptors() > 3)
    }
}

// MARK: support

/// A server whose log lines are captured, with metric reads through Stats.
struct LimitServer {
    let running: RunningServer
    let capture: LogCapture
    var socketPath: String { running.socketPath }
    var logs: [String] { capture.all }

    static func start(configure: (inout ServerConfiguration) -> Void) async throws -> LimitServer {
        let services = try await TestServices.shared()
        let db = try await offPool { try services.createDatabase() }
        let socket = "/tmp/es-lim-\(UInt32.random(in: 0...UInt32.max)).sock"
        var config = ServerConfiguration(socketPath: socket, postgresURL: db, redis: RedisEndpoint(url: services.redisURL)!)
        config.namespace = services.uniqueNamespace()
        config.postgresConnections = 2
        configure(&config)
        let capture = LogCapture()
        let logger = Logger(label: "limits") { _ in CapturingLogHandler(capture: capture) }
        let server = try EngineStoreServer(configuration: config, logger: logger)
        try await server.startAsync()
        return LimitServer(running: RunningServer(server: server, socketPath: socket, postgresURL: db,
                                                  namespace: config.namespace, redisURL: services.redisURL),
                           capture: capture)
    }

    func client() -> EngineStoreClient { running.client() }
    func stop() async { await running.stop() }

    /// One metric from Stats ("name" or "name{labels…}" containing every label given); nil when absent.
    func metric(_ name: String, _ labels: [String] = []) async throws -> Double? {
        let c = client()
        let text: String
        do { text = try await c.stats() } catch {
            await c.close()
            throw error
        }
        await c.close()
        var total: Double?
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            let key = line[..<space]
            let bare = key.split(separator: "{").first.map(String.init) ?? ""
            guard bare == name, labels.allSatisfy({ key.contains($0) }) else { continue }
            total = (total ?? 0) + v
        }
        return total
    }

    /// Floods (rounds of `Flooder.floodUntilBlocked`) until the server reports the connection held at
    /// its output cap, or closes it; gives up after 20 s. Returns the bytes sent.
    func floodUntilCapped(_ flooder: Flooder) async throws -> Int {
        var sent = 0
        let end = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < end && !flooder.closedByServer {
            sent += try await offPool { flooder.floodUntilBlocked(maxBytes: 64 << 20) }
            if try await metric("output_capped_connections") ?? 0 >= 1 { break }
        }
        return sent
    }

    /// Polls a metric (every 20 ms, up to 20 s) until `condition` holds for its value.
    func eventuallyMetric(_ name: String, _ labels: [String] = [], _ condition: (Double) -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < end {
            if let v = try await metric(name, labels), condition(v) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// Hands a raw connection to a blocking closure (one thread uses it at a time).
final class RawBox: @unchecked Sendable {
    let raw: RawConnection
    init(_ raw: RawConnection) { self.raw = raw }
}

/// Writes each event as one logfmt-like line into a `LogCapture`.
struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let line = "level=\(event.level) msg=\"\(event.message)\" " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        capture.append(line)
    }
}

/// A raw client that pipelines 1 KiB Pings without waiting for replies (non-blocking after Hello).
final class Flooder: @unchecked Sendable {
    private let raw: RawConnection
    private let frames: [UInt8]
    let frameBytes: Int
    private var position = 0
    private var closed = false
    /// A send failed: the server closed the connection.
    private(set) var closedByServer = false

    /// Pings with 1 KiB payloads (answered on the I/O thread, no in-flight slot: one request id serves
    /// them all), or with `stats`, Stats requests (answered by a worker) with ids unique across 4096.
    init(path: String, stats: Bool = false) throws {
        raw = try RawConnection(path: path)
        try raw.hello()
        if stats {
            let all = (0..<4096).map { i in
                Frame.encode(header: FrameHeader(kind: .request, method: 3, requestID: UInt32(100 + i)), message: StatsRequest())
            }
            frameBytes = all[0].count
            frames = Array(all.joined())
        } else {
            let one = Frame.encode(header: FrameHeader(kind: .request, method: 6, requestID: 2),
                                   message: PingMessage(payload: [UInt8](repeating: 0x5a, count: 1024)))
            frameBytes = one.count
            frames = Array([[UInt8]](repeating: one, count: 64).joined())
        }
        _ = fcntl(raw.fd, F_SETFL, fcntl(raw.fd, F_GETFL) | O_NONBLOCK)
    }

    var fd: Int32 { raw.fd }

    /// Sends what the socket takes now (whole frames, in order); -1 when the server closed.
    private func sendSome(limit: Int) -> Int {
        let n = frames.withUnsafeBytes { buf in
            Glibc.send(fd, buf.baseAddress! + position, min(buf.count - position, limit), Int32(MSG_NOSIGNAL))
        }
        if n > 0 {
            position = (position + n) % frames.count
            return n
        }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return 0 }
        closedByServer = true
        return -1
    }

    private func waitWritable(ms: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        return poll(&p, 1, ms) > 0
    }

    /// Floods until the socket has taken nothing for 300 ms (the server stopped reading), `maxBytes`
    /// went out, or 4 s passed. Returns the bytes sent.
    func floodUntilBlocked(maxBytes: Int) -> Int {
        var sent = 0
        let end = monotonicNanos() + 4_000_000_000
        while sent < maxBytes && monotonicNanos() < end {
            let n = sendSome(limit: maxBytes - sent)
            if n < 0 { break }
            if n > 0 { sent += n; continue }
            if !waitWritable(ms: 300) { break }
        }
        return sent
    }

    /// Keeps about `behind` bytes of replies unread: sends while less than that is outstanding, reads
    /// whatever has arrived. Returns the reply bytes read once `total` were read (or time ran out).
    func lag(behind: Int, total: Int, timeoutMs: UInt64) -> Int {
        var sent = 0
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let end = monotonicNanos() + timeoutMs * 1_000_000
        while received < total && monotonicNanos() < end {
            let outstanding = sent - received
            if outstanding < behind {
                let n = sendSome(limit: behind - outstanding)
                if n < 0 { break }
                if n > 0 { sent += n; continue }
            }
            // As far behind as wanted (or the socket is full): read a little, leave the rest unread.
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { received += n; continue }
            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { break }
            var p = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
            _ = poll(&p, 1, 50)
        }
        return received
    }

    /// Reads until EOF or a reset (the server closed the connection); false if still open at the timeout.
    func readUntilClosed(timeoutMs: UInt64) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let end = monotonicNanos() + timeoutMs * 1_000_000
        while monotonicNanos() < end {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 { return true }
            if n < 0 {
                if errno != EAGAIN && errno != EWOULDBLOCK { return true }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 100)
            }
        }
        return false
    }

    func close() {
        guard !closed else { return }
        closed = true
        shutdown(fd, Int32(SHUT_RDWR))
    }
}
