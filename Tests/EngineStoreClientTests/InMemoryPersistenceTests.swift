import EngineStoreClient
import Testing

/// The fake must behave like the server where engine code can tell the difference.
@Suite struct InMemoryPersistenceTests {
    func open(_ symbol: String, key: String = "", quantity: Double = 2) -> SavePositionRequest {
        SavePositionRequest(idempotencyKey: key, modelID: "m", symbol: symbol, exchangeProvider: "hl", side: .long,
                            quantity: quantity, entryPrice: 100, entryTimeMs: 1_764_201_600_000, commission: 4)
    }

    @Test func openUpdateAndOneOpenPositionPerSymbol() async throws {
        let store = InMemoryPersistence()
        let a = try await store.savePosition(open("btc"))
        #expect(a.opened)
        let b = try await store.savePosition(SavePositionRequest(modelID: "m", symbol: "BTC", currentPrice: 110))
        #expect(!b.opened)
        #expect(b.positionID == a.positionID)
        let positions = try await store.openPositions(model: "m")
        #expect(positions.positions.map(\.symbol) == ["BTC"])
    }

    @Test func openNeedsItsFields() async {
        let store = InMemoryPersistence()
        let error = await #expect(throws: EngineStoreError.self) {
            try await store.savePosition(SavePositionRequest(modelID: "m", symbol: "BTC", quantity: 1))
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func idempotencyKeysReplayOrConflict() async throws {
        let store = InMemoryPersistence()
        let first = try await store.savePosition(open("ETH", key: "k"))
        #expect(try await store.savePosition(open("ETH", key: "k")) == first)
        let error = await #expect(throws: EngineStoreError.self) { try await store.savePosition(open("ETH", key: "k", quantity: 3)) }
        #expect(error?.code == .conflict)
    }

    /// Every write shares one key space (§9): a repeat answers the first response without running
    /// again; the key under another method is a conflict.
    @Test func keysAreSharedByEveryWriteMethod() async throws {
        let store = InMemoryPersistence()
        let cycle = RecordDecisionCycleRequest(idempotencyKey: "d", modelID: "m", success: true)
        let first = try await store.recordDecisionCycle(cycle)
        #expect(try await store.recordDecisionCycle(cycle) == first)
        #expect(await store.decisions.count == 1)
        let error = await #expect(throws: EngineStoreError.self) {
            try await store.publishTradeEvent(PublishTradeEventRequest(idempotencyKey: "d", tradeID: "t1", modelID: "m",
                                                                       symbol: "BTC", kind: "fill", timestampMs: 1))
        }
        #expect(error?.code == .conflict)
        #expect(await store.tradeEvents.isEmpty)
    }

    @Test func closeComputesPnLAndNotFound() async throws {
        let store = InMemoryPersistence()
        _ = try await store.savePosition(open("BTC"))
        let partial = try await store.closePosition(ClosePositionRequest(modelID: "m", symbol: "BTC", exitPrice: 110, exitSize: 1,
                                                                         exitTimeMs: 1_764_201_700_000, exitCommission: 1))
        #expect(!partial.fullyClosed)
        #expect(partial.realizedGrossPnl == 10)
        #expect(partial.realizedNetPnl == 7)
        let full = try await store.closePosition(ClosePositionRequest(modelID: "m", symbol: "BTC", exitPrice: 90, exitTimeMs: 1_764_201_800_000))
        #expect(full.fullyClosed)
        #expect(full.realizedGrossPnl == -10)
        let error = await #expect(throws: EngineStoreError.self) {
            try await store.closePosition(ClosePositionRequest(modelID: "m", symbol: "BTC", exitPrice: 90, exitTimeMs: 1_764_201_900_000))
        }
        #expect(error?.code == .notFound)
        let trades = try await store.recentTrades(model: "m", limit: 10)
        #expect(trades.trades.map(\.exitPrice) == [90, 110])
    }

    @Test func tradeEventsDeduplicateByTradeID() async throws {
        let store = InMemoryPersistence()
        let e = PublishTradeEventRequest(tradeID: "t1", modelID: "m", symbol: "BTC", kind: "fill", timestampMs: 1_764_201_600_000)
        #expect(try await store.publishTradeEvent(e).duplicate == false)
        #expect(try await store.publishTradeEvent(e).duplicate == true)
    }
}

@Suite struct ClientConnectionTests {
    @Test func unreachableServerIsUnavailableAndRetryable() async {
        var config = ClientConfiguration(socketPath: "/tmp/engine-store-nobody-\(UInt32.random(in: 0...UInt32.max)).sock")
        config.defaultTimeout = .milliseconds(200)
        let client = EngineStoreClient(configuration: config)
        let error = await #expect(throws: EngineStoreError.self) { try await client.health() }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == true)
    }
}
