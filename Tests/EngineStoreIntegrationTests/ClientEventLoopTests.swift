import EngineStoreClient
import EngineStoreWire
import Foundation
import Glibc
import Synchronization
import Testing

/// The client's shared I/O loop (`ClientEventLoop`): one thread for many connections, which also runs
/// the tasks that prefer it as their executor.
@Suite struct ClientEventLoopTests {
    private func clients(_ s: RunningServer, _ loop: ClientEventLoop, count: Int) -> [EngineStoreClient] {
        (0..<count).map { _ in
            var config = ClientConfiguration(socketPath: s.socketPath)
            config.eventLoop = loop
            // What is checked is what arrives, not how fast: 4 MiB of writes beside the whole suite
            // on 2 cores once took longer than the default 5 s.
            config.defaultTimeout = .seconds(60)
            return EngineStoreClient(configuration: config)
        }
    }

    /// A task that prefers the loop is resumed on the loop's thread after every reply, across several
    /// connections, and each caller gets its own answer.
    @Test func tasksThatPreferTheLoopRunOnItAndGetTheirOwnAnswers() async throws {
        let s = try await RunningServer.start()
        let loop = ClientEventLoop(name: "test-loop")
        let clients = clients(s, loop, count: 3)
        let results = await withTaskGroup(of: (onLoop: Int, echoed: Int).self) { group in
            for worker in 0..<12 {
                let client = clients[worker % clients.count]
                group.addTask(executorPreference: loop) {
                    var onLoop = 0, echoed = 0
                    for i in 0..<40 {
                        let payload = Array("\(worker)-\(i)".utf8)
                        if (try? await client.ping(payload)) == payload { echoed += 1 }
                        if loop.isCurrentThread { onLoop += 1 }
                    }
                    return (onLoop, echoed)
                }
            }
            var total = (onLoop: 0, echoed: 0)
            for await r in group { total.onLoop += r.onLoop; total.echoed += r.echoed }
            return total
        }
        #expect(results.echoed == 12 * 40)
        #expect(results.onLoop == 12 * 40)
        // A caller that does not prefer the loop is resumed elsewhere (Swift's pool).
        _ = try await clients[0].ping([1])
        #expect(!loop.isCurrentThread)
        for c in clients { await c.close() }
        await s.stop()
    }

    /// Requests larger than the socket buffer, several at once on one connection: what a caller cannot
    /// send at once is left to the loop (EPOLLOUT), bytes never interleave, and every request arrives
    /// whole (Postgres holds each 1 MiB prompt as sent).
    @Test(arguments: [false, true])
    func largeRequestsFromConcurrentCallersArriveWhole(preferLoop: Bool) async throws {
        let s = try await RunningServer.start()
        let loop = ClientEventLoop(name: "test-loop")
        let client = clients(s, loop, count: 1)[0]
        let prompts = (0..<4).map { k in String(repeating: String(UnicodeScalar(UInt8(65 + k))), count: 1 << 20) }
        let ok = await withTaskGroup(of: Bool.self) { group in
            for k in 0..<4 {
                group.addTask(executorPreference: preferLoop ? loop : nil) {
                    do { _ = try await client.recordConversation(RecordConversationRequest(modelID: "big-\(k)", prompt: prompts[k])); return true } catch { print("big: \(error)"); return false }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(ok == 4)
        let pg = try s.postgres()
        for k in 0..<4 {
            let stored = try pg.execParams("""
                SELECT m.content FROM conversation_messages m JOIN conversations c ON c.id = m.conversation_id
                WHERE c.model_id = $1 AND m.role = 'system'
                """, ["big-\(k)"]).string(0, 0)
            #expect(stored == prompts[k], "prompt \(k)")
        }
        await client.close()
        await s.stop()
    }

    /// Replies larger than the client's 64 KiB read buffer (trader states with two ~60 KiB JSON
    /// documents), many in flight at once beside small ones: the buffer grows to hold a frame, unparsed
    /// bytes move to its front, and every reply comes back whole and to its own caller.
    @Test func largeRepliesArriveWholeBesideSmallOnes() async throws {
        let s = try await RunningServer.start()
        let loop = ClientEventLoop(name: "test-loop")
        let client = clients(s, loop, count: 1)[0]
        let sizes = [0, 60_000, 3, 40_000, 65_000, 17]
        func document(_ trader: Int, _ n: Int) -> String {
            "{\"k\":\"" + String(repeating: String(UnicodeScalar(UInt8(97 + trader))), count: n) + "\"}"
        }
        for (t, n) in sizes.enumerated() {
            _ = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(
                traderID: "big-reply-\(t)", exchangeProvider: "x", marketProvider: "y",
                cooldownJSON: document(t, n), riskGuardsJSON: document(t, n / 2))))
        }
        let whole = await withTaskGroup(of: Bool.self) { group in
            for round in 0..<4 {
                for (t, n) in sizes.enumerated() {
                    group.addTask(executorPreference: round == 1 ? nil : loop) {
                        guard let r = try? await client.traderState(trader: "big-reply-\(t)") else { return false }
                        return r.state.traderID == "big-reply-\(t)" && r.state.cooldownJSON == document(t, n)
                            && r.state.riskGuardsJSON == document(t, n / 2)
                    }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(whole == 4 * sizes.count)
        await client.close()
        await s.stop()
    }

    /// A server that takes the handshake and then never answers: the loop's deadline sweep fails the
    /// call when its time is up, and the connection's other work is unaffected by it.
    @Test func aCallWithoutAnAnswerFailsAtItsDeadline() async throws {
        let path = "/tmp/es-silent-\(UInt32.random(in: 0...UInt32.max)).sock"
        let silent = try SilentServer(path: path)
        defer { silent.stop() }
        var config = ClientConfiguration(socketPath: path)
        config.eventLoop = ClientEventLoop(name: "test-loop")
        config.defaultTimeout = .milliseconds(300)
        let client = EngineStoreClient(configuration: config)
        try await client.connect()
        let start = ContinuousClock.now
        let error = await #expect(throws: EngineStoreError.self) { _ = try await client.ping([7]) }
        let waited = ContinuousClock.now - start
        #expect(error?.code == .deadlineExceeded)
        #expect(waited >= .milliseconds(250) && waited < .seconds(3), "waited \(waited)")
        await client.close()
    }
}

/// Accepts one connection, answers its Hello, then reads and never answers (on a thread of its own).
private final class SilentServer: Sendable {
    let fd: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(fd, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        let listener = fd
        Thread {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            var input: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            var answered = false
            while true {
                let n = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                input += buffer[0..<n]
                if !answered, case .frame(let frame, _)? = try? FrameParser.next(in: input[...], maxFrameBytes: UInt32.max) {
                    answered = true
                    let hello = HelloResponse(version: 1, serverName: "silent", maxFrameBytes: WireLimits.defaultMaxFrameBytes)
                    let reply = Frame.encode(header: FrameHeader(kind: .response, method: frame.header.method, requestID: frame.header.requestID),
                                             message: hello)
                    _ = reply.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                }
            }
            close(c)
        }.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}
