import EngineStoreClient
import Foundation
import TestHarness
import Testing

/// What Health said over one raw connection before, during and after a hang.
private struct HangObservations: Sendable {
    var before: HealthResponse?
    var during: HealthResponse?
    var duringElapsed: Duration = .zero
    var after: HealthResponse?
    /// Frames that answered no request we were waiting for (a second answer to an earlier Health).
    var strays: [UInt32] = []
    var pingAfter = false
}

/// Health answers in bounded time while a dependency hangs (SIGSTOP: connections stay open and
/// nothing answers), on a Postgres and Redis of the test's own.
@Suite struct HealthWhileHungTests {
    /// Health over a raw connection with the deadline a 2 s probe sends; frames for other request ids
    /// are recorded as strays and skipped.
    private static func health(_ raw: RawConnection, id: UInt32, _ seen: inout HangObservations) throws -> HealthResponse? {
        raw.send(Frame.encode(header: FrameHeader(kind: .request, method: 2, requestID: id, deadlineMs: 2000), message: HealthRequest()))
        while let f = try raw.readFrame() {
            guard f.header.requestID == id else {
                seen.strays.append(f.header.requestID)
                continue
            }
            return f.header.kind == .response ? try HealthResponse(payload: f.payload) : nil
        }
        return nil
    }

    /// Pauses a dependency with `pause`, asks Health on one raw connection, resumes with `resume`,
    /// and polls Health on the same connection until it is ok again (at most 15 s).
    private static func observe(_ path: String, pause: @escaping @Sendable () throws -> Void,
                                resume: @escaping @Sendable () throws -> Void) async throws -> HangObservations {
        try await offPool {
            var seen = HangObservations()
            let raw = try RawConnection(path: path)
            try raw.hello()
            seen.before = try health(raw, id: 2, &seen)
            try pause()
            defer { try? resume() }
            let start = ContinuousClock.now
            seen.during = try health(raw, id: 3, &seen)
            seen.duringElapsed = ContinuousClock.now - start
            try resume()
            let end = ContinuousClock.now + .seconds(15)
            var id: UInt32 = 4
            repeat {
                seen.after = try health(raw, id: id, &seen)
                id += 1
            } while seen.after?.status != .ok && ContinuousClock.now < end
            // The late ping of request 3 has come back by now (the dependency answers again): still
            // one answer per request, and the connection was never replaced.
            seen.pingAfter = try raw.ping(id: id)
            return seen
        }
    }

    /// Health through the client the probe uses (2 s timeout) while the dependency hangs.
    private static func probe(_ path: String) async throws -> HealthResponse {
        var config = ClientConfiguration(socketPath: path)
        config.defaultTimeout = .seconds(2)
        config.clientName = "test-probe"
        let client = EngineStoreClient(configuration: config)
        do {
            let h = try await client.health(timeout: config.defaultTimeout)
            await client.close()
            return h
        } catch {
            await client.close()
            throw error
        }
    }

    @Test func hungPostgresIsUnhealthyWithinTheTimeoutThenOkAgain() async throws {
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services)

        let seen = try await Self.observe(s.socketPath, pause: { try services.pausePostgres() },
                                          resume: { try services.resumePostgres() })
        #expect(seen.before?.status == .ok)
        let during = try #require(seen.during, "no Health answer while Postgres hangs")
        #expect(seen.duringElapsed < .seconds(3), "Health took \(seen.duringElapsed)")
        #expect(during.status == .unhealthy)
        #expect(!during.postgres.ok)
        #expect(during.postgres.error != nil)
        #expect(during.redis.ok)
        #expect(seen.after?.status == .ok, "Health after SIGCONT: \(String(describing: seen.after))")
        #expect(seen.after?.postgres.ok == true)
        #expect(seen.strays.isEmpty, "extra answers for requests \(seen.strays)")
        #expect(seen.pingAfter)

        // The probe's own path: the client with a 2 s timeout gets an answer, not "unreachable".
        try await offPool { try services.pausePostgres() }
        defer { try? services.resumePostgres() }
        let probed = try await Self.probe(s.socketPath)
        #expect(probed.status == .unhealthy)
        #expect(!probed.postgres.ok)
        try await offPool { try services.resumePostgres() }
        let end = ContinuousClock.now + .seconds(15)
        var recovered = try? await Self.probe(s.socketPath)
        while recovered?.status != .ok && ContinuousClock.now < end {
            recovered = try? await Self.probe(s.socketPath)
        }
        #expect(recovered?.status == .ok)
        await s.stop()
    }

    @Test func hungRedisIsDegradedWithinTheTimeoutThenOkAgain() async throws {
        let services = try await TestServices.privateInstance()
        // A health timeout well below the cache writer's 2 s Redis timeout: the answer must come from
        // the health timer, not from the Redis command timing out.
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services) {
            $0.healthTimeoutMs = 300
        }

        let seen = try await Self.observe(s.socketPath, pause: { try services.pauseRedis() },
                                          resume: { try services.resumeRedis() })
        #expect(seen.before?.status == .ok)
        let during = try #require(seen.during, "no Health answer while Redis hangs")
        #expect(seen.duringElapsed < .milliseconds(1500), "Health took \(seen.duringElapsed)")
        #expect(during.status == .degraded)
        #expect(during.postgres.ok)
        #expect(!during.redis.ok)
        #expect(seen.after?.status == .ok, "Health after SIGCONT: \(String(describing: seen.after))")
        #expect(seen.strays.isEmpty, "extra answers for requests \(seen.strays)")
        #expect(seen.pingAfter)
        await s.stop()
    }
}
