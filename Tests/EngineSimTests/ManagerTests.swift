import EngineSim
import EngineStoreClient
import Testing

/// Manager and trader logic against the in-memory fake: no server, no global state.
@Suite struct ManagerTests {
    func run(rounds: Int, seed: UInt64, store: InMemoryPersistence) async throws -> Manager.Report {
        var config = Manager.Configuration()
        config.seed = seed
        let manager = Manager(configuration: config, store: store)
        try await manager.restore()
        for _ in 0..<rounds { try await manager.round() }
        return await manager.report()
    }

    @Test func whatTheTradersDidIsWhatTheStoreHolds() async throws {
        let store = InMemoryPersistence()
        let r = try await run(rounds: 40, seed: 7, store: store)
        #expect(r.cycles == 120)
        #expect(r.opens > 0 && r.closes > 0)
        #expect(r.ticks == 160)
        for (trader, symbols) in r.openPositions {
            #expect(await store.openPositions(model: trader).map(\.request.symbol).sorted() == symbols)
        }
        #expect(await store.trades.count == r.closes)
        #expect(await store.decisions.count == 120)
        // One conversation per decision, as nof0's executor records them. Traders run concurrently, so
        // the two lists interleave the traders differently: compare them as multisets.
        #expect(await store.conversations.map { $0.response ?? "-" }.sorted() == store.decisions.map { $0.decisionsJSON ?? "-" }.sorted())
        #expect(await store.ticks.count == 160)
        // One stored snapshot per trader at most every five simulated minutes (one minute per round).
        #expect(await store.snapshots.count == 3 * 8)
        let board = try await store.leaderboard(limit: 10)
        #expect(Set(board.entries.map(\.modelID)) == Set(r.openPositions.keys))
        #expect(await store.traderStates.count == 3)
    }

    @Test func aSeedReproducesTheRun() async throws {
        let a = try await run(rounds: 25, seed: 42, store: InMemoryPersistence())
        let b = try await run(rounds: 25, seed: 42, store: InMemoryPersistence())
        #expect(a == b)
    }

    @Test func aRestartedManagerContinuesFromTheStore() async throws {
        let store = InMemoryPersistence()
        let first = try await run(rounds: 20, seed: 3, store: store)
        let openBefore = first.openPositions.values.reduce(0) { $0 + $1.count }
        var config = Manager.Configuration()
        config.seed = 99
        let manager = Manager(configuration: config, store: store)
        try await manager.restore()
        let restored = await manager.report()
        #expect(restored.restoredPositions == openBefore)
        #expect(restored.openPositions == first.openPositions)
        for _ in 0..<10 { try await manager.round() }
        // Still at most one open position per (trader, symbol): restored positions were not reopened.
        for t in manager.traders {
            let open: [InMemoryPersistence.StoredPosition] = await store.openPositions(model: t.id)
            #expect(Set(open.map(\.request.symbol)).count == open.count)
            #expect(open.map(\.request.symbol).sorted() == (await t.positions.keys.sorted()))
        }
    }
}
