import EngineStoreClient
import Foundation

/// One worker's view of the world: the positions it opened (its own symbols, so workers never
/// contend), its clocks for snapshots and closes, and its counters for unique ids.
struct Workload {
    let run: String
    let worker: Int
    let models: [String]
    let symbolsPerModel: Int
    let ticksPerBatch: Int
    var rng: SplitMix
    var open: [(model: String, symbol: String, quantity: Double)] = []
    var closed = 0
    var serial = 0
    /// Strictly increasing per worker: exit times, tick times and snapshot times stay unique.
    var clock: Int64

    init(run: String, worker: Int, configuration: LoadConfiguration, seed: UInt64) {
        self.run = run
        self.worker = worker
        self.models = (0..<max(1, configuration.models)).map { "load-\(run)-m\($0)" }
        self.symbolsPerModel = max(1, configuration.symbols)
        self.ticksPerBatch = max(1, configuration.ticksPerBatch)
        self.rng = SplitMix(seed: seed &+ UInt64(worker) &* 0x9E37_79B9_7F4A_7C15)
        self.clock = Int64(Date().timeIntervalSince1970 * 1000) - 86_400_000 + Int64(worker) * 1_000_000_000 % 3_600_000
    }

    mutating func next() -> Int64 {
        clock += 1
        return clock
    }

    mutating func symbol() -> String {
        serial += 1
        return "W\(worker)-\(serial % (symbolsPerModel * 1000))"
    }

    /// Runs one operation; returns what the server acknowledged (for --verify).
    mutating func perform(_ op: Operation, on store: EngineStoreClient, ack: inout Acknowledged) async throws {
        switch op {
        case .health:
            _ = try await store.health()
        case .noop:
            _ = try await store.ping()
        case .openPosition:
            try await openOne(on: store, ack: &ack)
        case .savePosition:
            // Mostly opens; a third of the time a mark-to-market update of an open position.
            if !open.isEmpty && Int.random(in: 0..<3, using: &rng) == 0 {
                let p = open[Int.random(in: 0..<open.count, using: &rng)]
                _ = try await store.savePosition(SavePositionRequest(modelID: p.model, symbol: p.symbol,
                                                                     currentPrice: 100 + Double.random(in: -5...5, using: &rng)))
            } else {
                try await openOne(on: store, ack: &ack)
            }
        case .closePosition:
            if open.isEmpty { try await openOne(on: store, ack: &ack) }
            let i = Int.random(in: 0..<open.count, using: &rng)
            let p = open[i]
            let partial = p.quantity > 1 && Bool.random(using: &rng)
            let size = partial ? p.quantity / 2 : p.quantity
            let r = try await store.closePosition(ClosePositionRequest(
                modelID: p.model, symbol: p.symbol, exitPrice: 100 + Double.random(in: -10...10, using: &rng),
                exitSize: partial ? size : nil, exitTimeMs: next(), exitCommission: 0.05))
            ack.tradeRowIDs.insert(r.tradeRowID)
            if r.fullyClosed { open.remove(at: i) } else { open[i].quantity = r.remainingSize }
        case .snapshot:
            let model = models[Int.random(in: 0..<models.count, using: &rng)]
            let marks = open.filter { $0.model == model }.prefix(4).map { PositionMark(symbol: $0.symbol, currentPrice: 101) }
            let ts = next()
            let r = try await store.saveSnapshots(SaveSnapshotRequest(snapshots: [
                AccountSnapshot(modelID: model, timestampMs: ts, dollarEquity: 10_000 + Double.random(in: -100...100, using: &rng),
                                marks: Array(marks)),
            ]))
            for result in r.results where result.stored && result.modelID == model { ack.snapshots.insert("\(model)|\(ts)") }
        case .tradeEvent:
            serial += 1
            let id = "load-\(run)-w\(worker)-e\(serial)"
            let r = try await store.publishTradeEvent(PublishTradeEventRequest(
                tradeID: id, modelID: models[Int.random(in: 0..<models.count, using: &rng)], symbol: "BTC", kind: "fill",
                side: .long, price: 97_000, size: 0.01, fee: 0.01, timestampMs: next()))
            if !r.duplicate { ack.tradeEventIDs.insert(id) }
        case .ticks:
            var batch: [PriceTick] = []
            batch.reserveCapacity(ticksPerBatch)
            for i in 0..<ticksPerBatch {
                // Each worker ticks its own symbols with its own strictly increasing clock, so a
                // repeated (symbol, ts) in Postgres can only be a duplicated write (--verify).
                batch.append(PriceTick(provider: "load", symbol: "T\(run)-W\(worker)-\(i % 16)", price: 100 + Double(i % 100) / 100,
                                       timestampMs: next(), volume: 1))
            }
            let r = try await store.ingestPriceTicks(IngestPriceTicksRequest(ticks: batch))
            ack.ticks += Int(r.stored)
        }
    }

    mutating func openOne(on store: EngineStoreClient, ack: inout Acknowledged) async throws {
        let model = models[Int.random(in: 0..<models.count, using: &rng)]
        let symbol = symbol()
        let quantity = Double(Int.random(in: 1...4, using: &rng))
        let r = try await store.savePosition(SavePositionRequest(
            modelID: model, symbol: symbol, exchangeProvider: "load", side: Bool.random(using: &rng) ? .long : .short,
            quantity: quantity, entryPrice: 100, entryTimeMs: next(), leverage: 5, confidence: 0.5, commission: 0.05))
        if r.opened {
            ack.openedPositionIDs.insert(r.positionID)
            open.append((model, symbol, quantity))
        }
    }
}

/// A small, fast, seedable generator (deterministic runs with --seed).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
