import EngineSim
import EngineStoreClient
import Foundation
import Hiredis
import LibPQ
import Testing

/// engine-sim against a live service: Postgres and Redis agree with what the simulation reports.
@Suite struct EngineSimEndToEndTests {
    func simulate(_ s: RunningServer, seed: UInt64, rounds: Int, prefix: String) async throws -> Manager.Report {
        var config = Manager.Configuration()
        config.seed = seed
        config.traderPrefix = prefix
        config.startMs = 1_764_201_600_000 + Int64(seed) * 86_400
        let client = s.client()
        let manager = Manager(configuration: config, store: client)
        try await manager.restore()
        for _ in 0..<rounds { try await manager.round() }
        let report = await manager.report()
        await client.close()
        return report
    }

    @Test func storeAgreesWithTheSimulationAndARestartContinues() async throws {
        let s = try await RunningServer.start { $0.marketCacheIntervalMs = 0 }
        let prefix = "e2e"
        let first = try await simulate(s, seed: 11, rounds: 30, prefix: prefix)
        let pg = try s.postgres()
        let redis = try s.redis()
        #expect(try pg.exec("SELECT count(*) FROM trades WHERE model_id LIKE 'e2e-%'").int(0, 0) == Int64(first.closes))
        #expect(try pg.exec("SELECT count(*) FROM price_ticks WHERE provider = 'sim'").int(0, 0) == Int64(first.ticks))
        for (trader, symbols) in first.openPositions {
            let rows = try pg.execParams("SELECT symbol FROM positions WHERE model_id = $1 AND status = 'open' ORDER BY symbol", [trader])
            #expect((0..<rows.rowCount).compactMap { rows.string($0, 0) } == symbols)
            let key = s.namespace + "positions:\(trader)"
            #expect(try await eventually {
                let fields = try redis.command(["HKEYS", key]).array?.compactMap(\.text).sorted() ?? []
                return fields == symbols || (symbols.isEmpty && fields.isEmpty)
            })
            #expect(try pg.execParams("SELECT count(*) FROM account_equity_snapshots WHERE model_id = $1", [trader]).int(0, 0) ?? 0 > 0)
        }
        #expect(try await eventually {
            Set(try redis.command(["ZRANGE", s.namespace + "leaderboard", "0", "-1"]).array?.compactMap(\.text) ?? [])
                .isSuperset(of: first.openPositions.keys)
        })
        #expect(try await eventually { (try redis.command(["XLEN", s.namespace + "trades:stream"]).integer ?? 0) >= Int64(first.closes) })

        // Restart the engine with the same trader ids: positions come back from the service.
        let openBefore = first.openPositions.values.reduce(0) { $0 + $1.count }
        let second = try await simulate(s, seed: 12, rounds: 10, prefix: prefix)
        #expect(second.restoredPositions == openBefore)
        // No duplicate opens: at most one open row per (trader, symbol), and Postgres matches the engine.
        #expect(try pg.exec("SELECT count(*) FROM (SELECT 1 FROM positions WHERE status = 'open' GROUP BY model_id, symbol HAVING count(*) > 1) d").int(0, 0) == 0)
        for (trader, symbols) in second.openPositions {
            let rows = try pg.execParams("SELECT symbol FROM positions WHERE model_id = $1 AND status = 'open' ORDER BY symbol", [trader])
            #expect((0..<rows.rowCount).compactMap { rows.string($0, 0) } == symbols)
        }
        #expect(try pg.exec("SELECT count(*) FROM trades WHERE model_id LIKE 'e2e-%'").int(0, 0) == Int64(first.closes + second.closes))
        await s.stop()
    }
}
