import EngineStoreClient
import EngineStoreLoad
import Foundation
import LibPQ
import Testing

@Suite struct LoadTesterTests {
    @Test func shortRunOfEveryMixEntryWithJSONAndVerify() async throws {
        let s = try await RunningServer.start { $0.snapshotMinIntervalMs = 0 }
        var c = LoadConfiguration(socketPath: s.socketPath)
        c.connections = 2
        c.inFlight = 4
        c.mix = try Mix(parsing: "save-position=3,open-position=1,close-position=2,snapshot=1,trade-event=1,ticks=1,health=1,noop=1")
        c.duration = nil
        c.count = 400
        c.ticksPerBatch = 20
        c.verifyPostgresURL = s.postgresURL
        c.seed = 42
        let report = try await LoadRunner.run(c)
        #expect(report.totalErrors == 0)
        #expect(report.totalRequests == 400)
        #expect(Set(report.lines.map(\.operation)) == Set(Operation.allCases.map(\.rawValue)))
        let v = try #require(report.verification)
        #expect(v.ok)
        #expect(v.missing == 0 && v.duplicates == 0)
        #expect(v.acknowledged > 0)

        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(object["requests"] as? Int == 400)
        #expect(object["errors"] as? Int == 0)
        let rpcs = try #require(object["rpcs"] as? [[String: Any]])
        #expect(rpcs.count == 8)
        for rpc in rpcs {
            let p50 = try #require(rpc["p50_us"] as? Int), p99 = try #require(rpc["p99_us"] as? Int)
            #expect(p50 > 0 && p50 <= p99)
        }
        #expect((object["verify"] as? [String: Any])?["missing"] as? Int == 0)
        #expect(report.html.contains("<svg") && report.html.contains("polyline"))
        await s.stop()
    }

    @Test func verifyCatchesADeletedRow() async throws {
        let s = try await RunningServer.start()
        var c = LoadConfiguration(socketPath: s.socketPath)
        c.mix = try Mix(parsing: "save-position=1")
        c.duration = nil
        c.count = 50
        c.seed = 7
        // Delete one acknowledged position before verifying: run without verify, then verify by hand.
        c.verifyPostgresURL = s.postgresURL
        let clean = try await LoadRunner.run(c)
        #expect(clean.verification?.ok == true)

        // A second run whose rows lose one member behind the tester's back: simulated by deleting a
        // row of the first run and re-running the check for that run through the same path.
        let pg = try s.postgres()
        try pg.exec("DELETE FROM positions WHERE id = (SELECT id FROM positions WHERE model_id LIKE 'load-\(clean.run)-%' LIMIT 1)")
        let recheck = try LoadRunner.reverify(report: clean, postgresURL: s.postgresURL)
        #expect(recheck.missing == 1)
        #expect(!recheck.ok)
        await s.stop()
    }
}
