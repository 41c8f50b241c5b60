import EngineStoreClient
import Foundation

/// Owns the traders and the market feed. Every collaborator is injected: the store is any
/// `PersistenceService` (the live client, or `InMemoryPersistence` in unit tests).
public actor Manager {
    public struct Configuration: Sendable {
        public var traders = 3
        public var symbols = ["BTC", "ETH", "SOL", "DOGE"]
        public var seed: UInt64 = 1
        /// Simulated milliseconds per cycle.
        public var stepMs: Int64 = 60_000
        public var startMs: Int64 = 1_764_201_600_000
        public var traderPrefix = "sim-trader"
        public init() {}
    }

    /// The traders' counts summed (read as `report.cycles`, `report.closes`, ...), the ticks sent and
    /// the positions open at the end.
    @dynamicMemberLookup
    public struct Report: Sendable, Equatable {
        public var totals = VirtualTrader.Counts()
        public var ticks = 0
        /// trader id → symbols open at the end.
        public var openPositions: [String: [String]] = [:]

        public subscript<T>(dynamicMember count: KeyPath<VirtualTrader.Counts, T>) -> T { totals[keyPath: count] }
    }

    public let configuration: Configuration
    public nonisolated let traders: [VirtualTrader]
    private let store: any PersistenceService
    private let exchange: SimulatedExchange
    private var ticks = 0

    public init(configuration: Configuration, store: any PersistenceService) {
        self.configuration = configuration
        self.store = store
        let exchange = SimulatedExchange(symbols: configuration.symbols, seed: configuration.seed, startMs: configuration.startMs)
        self.exchange = exchange
        self.traders = (0..<configuration.traders).map { i in
            VirtualTrader(id: "\(configuration.traderPrefix)-\(i)", store: store, exchange: exchange,
                          seed: configuration.seed &+ UInt64(i) &* 7919)
        }
    }

    /// Restores every trader from the store (positions and state) before trading on.
    public func restore() async throws {
        for t in traders { try await t.restore() }
    }

    /// One round: a market step (ticks ingested in one batch), then one cycle per trader.
    public func round() async throws {
        let batch = await exchange.step(ms: configuration.stepMs)
        _ = try await store.ingestPriceTicks(IngestPriceTicksRequest(ticks: batch.map {
            PriceTick(provider: "sim", symbol: $0.symbol, price: $0.price, timestampMs: $0.ts)
        }))
        ticks += batch.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in traders { group.addTask { try await t.cycle() } }
            try await group.waitForAll()
        }
    }

    public func report() async -> Report {
        var r = Report()
        r.ticks = ticks
        for t in traders {
            r.totals.add(await t.counts)
            r.openPositions[t.id] = await t.positions.keys.sorted()
        }
        return r
    }
}
