@testable import EngineStoreServer
import EngineStoreClient
import Foundation
import Testing

@Suite struct PipelineTests {
    @Test func savePositionsTakeThePipelinedPathAndRepliesMatchTheRecord() async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 1 }
        let client = s.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask { _ = try await client.savePosition(openRequest(model: "pipe", symbol: "P\(i)", key: "pipe-\(i)")) }
            }
            try await group.waitForAll()
        }
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) == 40)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == 0)
        // Group commit happened: fewer commits than jobs.
        #expect(s.server.stats.commits.load(ordering: .relaxed) < 40)
        // The reply recorded by SQL replays byte for byte the reply encoded in Swift.
        let first = try await client.savePosition(openRequest(model: "pipe", symbol: "Q", key: "pipe-q"))
        let replay = try await client.savePosition(openRequest(model: "pipe", symbol: "Q", key: "pipe-q"))
        #expect(first == replay)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == 1)
        let pg = try s.postgres()
        let stored = try pg.execParams("SELECT encode(response, 'hex') FROM engine_store_idempotency WHERE key = 'pipe-q'", [])
        #expect(stored.string(0, 0) == hexOf(first.encodedPayload()))
        await client.close()
        await s.stop()
    }
}

func hexOf(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
