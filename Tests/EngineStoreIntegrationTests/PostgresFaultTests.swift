import EngineStoreClient
import EngineStoreServer
import EngineStoreWire
import Foundation
import LibPQ
import TestHarness
import Testing

/// Postgres hung (SIGSTOP) or absent, seen over a raw connection that does not retry: the answer is
/// `unavailable` well inside the request's deadline, and afterwards every worker reconnects.
@Suite(.serialized) struct PostgresFaultTests {
    func connectedWorkers(_ client: EngineStoreClient) async throws -> Int? {
        let text = try await client.stats()
        for line in text.split(separator: "\n") where line.hasPrefix("postgres_connected_workers") {
            return line.split(separator: " ").last.flatMap { Double($0) }.map { Int($0) }
        }
        return nil
    }

    /// On a new raw connection (no client retries), one SavePosition with a 10 s deadline: the error
    /// (nil on success), whether the error is retryable, and how long the answer took.
    static func timedSave(_ path: String, model: String) throws -> (code: UInt8?, retryable: Bool, took: Duration) {
        let raw = try RawConnection(path: path)
        try raw.hello()
        let start = ContinuousClock.now
        let frame = try raw.request(Method.savePosition.rawValue, id: 2, openRequest(model: model, symbol: "BTC"), deadlineMs: 10_000)
        let took = ContinuousClock.now - start
        guard frame != nil else { throw EngineStoreError(code: .unavailable, message: "connection closed") }
        let error = errorPayload(frame)
        #expect(try raw.ping(id: 3), "the connection must stay usable")
        return (error?.code, error?.retryable ?? false, took)
    }

    @Test func hungPostgresAnswersUnavailableInsideTheDeadlineAndEveryWorkerReconnects() async throws {
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services) {
            $0.postgresConnections = 3
            $0.postgresTimeoutMs = 1000
        }
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "hang", symbol: "ETH"))
        #expect(try await eventuallyAsync { try await connectedWorkers(client) == 3 })
        let path = s.socketPath

        try await offPool { try services.pausePostgres() }
        defer { try? services.resumePostgres() }
        let hung = try await offPool { try Self.timedSave(path, model: "hang") }
        #expect(hung.code == ErrorCode.unavailable.rawValue, "got \(String(describing: hung.code))")
        #expect(hung.retryable)
        #expect(hung.took < .seconds(5), "answered after \(hung.took) of a 10 s deadline")
        try await offPool { try services.resumePostgres() }

        // Every worker (not just the one that served a request) finds its way back by itself.
        #expect(try await eventuallyAsync(timeout: .seconds(20)) { try await connectedWorkers(client) == 3 })
        #expect(try await offPool { try Self.timedSave(path, model: "hang") }.code == nil)
        await client.close()
        await s.stop()
    }

    @Test func absentPostgresAnswersUnavailableAtOnceThenRecovers() async throws {
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services) {
            $0.postgresConnections = 2
        }
        let client = s.client()
        let path = s.socketPath
        try await offPool { try services.stopPostgres() }
        var started = false
        defer { if !started { try? services.startPostgres() } }
        let gone = try await offPool { try Self.timedSave(path, model: "gone") }
        #expect(gone.code == ErrorCode.unavailable.rawValue, "got \(String(describing: gone.code))")
        #expect(gone.retryable)
        #expect(gone.took < .seconds(2), "answered after \(gone.took) of a 10 s deadline")
        try await offPool { try services.startPostgres() }
        started = true
        #expect(try await eventuallyAsync(timeout: .seconds(20)) { try await connectedWorkers(client) == 2 })
        #expect(try await offPool { try Self.timedSave(path, model: "gone") }.code == nil)
        await client.close()
        await s.stop()
    }
}
