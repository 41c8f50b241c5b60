import EngineStoreClient
import Foundation

/// One LLM-style trader. Its persistence comes in through the initializer — nothing global — so
/// the same code runs against the live service or the in-memory fake.
public actor VirtualTrader {
    public struct Held: Sendable, Equatable {
        public var side: PositionSide
        public var quantity: Double
        public var entryPrice: Double
        public var entryTimeMs: Int64
        public var entryFee: Double
    }

    public struct Counts: Sendable, Equatable {
        public var cycles = 0
        public var opens = 0
        public var fullCloses = 0
        public var partialCloses = 0
        public var snapshotsStored = 0
        public var restoredPositions = 0
        public var closes: Int { fullCloses + partialCloses }

        /// Adds another trader's counts (the manager's report).
        mutating func add(_ o: Counts) {
            cycles += o.cycles
            opens += o.opens
            fullCloses += o.fullCloses
            partialCloses += o.partialCloses
            snapshotsStored += o.snapshotsStored
            restoredPositions += o.restoredPositions
        }
    }

    public let id: String
    private let store: any PersistenceService
    private let exchange: SimulatedExchange
    private var rng: SeededRandom
    public private(set) var positions: [String: Held] = [:]
    public private(set) var counts = Counts()
    private var realized = 0.0
    private let startingEquity = 10_000.0

    public init(id: String, store: any PersistenceService, exchange: SimulatedExchange, seed: UInt64) {
        self.id = id
        self.store = store
        self.exchange = exchange
        self.rng = SeededRandom(seed: seed)
    }

    /// After an engine restart: take the open positions and state back from the store instead of starting flat.
    public func restore() async throws {
        let open = try await store.openPositions(model: id)
        for p in open.positions {
            positions[p.symbol] = Held(side: p.side, quantity: p.quantity, entryPrice: p.entryPrice, entryTimeMs: 0, entryFee: 0)
        }
        counts.restoredPositions = open.positions.count
        if let state = try? await store.traderState(trader: id), let guards = state.state.riskGuardsJSON,
           let o = try? JSONSerialization.jsonObject(with: Data(guards.utf8)) as? [String: Any],
           let r = o["realized_usd"] as? Double {
            realized = r
        }
    }

    /// One decision cycle: decide → record → execute → persist → mark and snapshot → analytics → state.
    public func cycle() async throws {
        counts.cycles += 1
        let symbols = exchange.symbols
        let symbol = symbols[Int.random(in: 0..<symbols.count, using: &rng)]
        let roll = Double.random(in: 0..<1, using: &rng)
        let action: String
        if let held = positions[symbol] {
            action = roll < 0.35 ? "close" : (roll < 0.5 && held.quantity >= 2 ? "reduce" : "hold")
        } else {
            action = roll < 0.5 ? (Bool.random(using: &rng) ? "open_long" : "open_short") : "hold"
        }
        let confidence = (Double.random(in: 0.4..<0.95, using: &rng) * 100).rounded() / 100
        let now = await exchange.now
        let decisions = #"[{"symbol":"\#(symbol)","action":"\#(action)","confidence":\#(confidence)}]"#
        // The LLM exchange behind the decision, recorded as nof0's executor does (one per decision).
        let prompt = "cycle \(counts.cycles): \(symbol) at \(await exchange.price(symbol)); holding \(positions.keys.sorted())"
        _ = try await store.recordConversation(RecordConversationRequest(
            modelID: id, prompt: prompt, response: decisions, promptTokens: UInt32(prompt.utf8.count / 4),
            completionTokens: UInt32(decisions.utf8.count / 4), modelName: "sim", timestampMs: now, topic: "decision"))
        _ = try await store.recordDecisionCycle(RecordDecisionCycleRequest(
            modelID: id, cycleNumber: Int64(counts.cycles), promptDigest: "sim:\(counts.cycles)",
            cotTrace: "cycle \(counts.cycles): \(symbol) looks like \(action)",
            decisionsJSON: decisions, success: true, executedAtMs: now))

        switch action {
        case "open_long", "open_short": try await open(symbol, long: action == "open_long", confidence: confidence)
        case "close": try await close(symbol, size: nil)
        case "reduce": try await close(symbol, size: (positions[symbol]!.quantity / 2).rounded(.down))
        default: break
        }
        try await markAndSnapshot()
    }

    private func open(_ symbol: String, long: Bool, confidence: Double) async throws {
        let size = Double(Int.random(in: 1...4, using: &rng))
        let now = await exchange.now
        // Order sent: record it as waiting for its fill.
        _ = try await store.savePosition(SavePositionRequest(
            modelID: id, symbol: symbol, exchangeProvider: "sim", side: long ? .long : .short, quantity: size,
            entryPrice: await exchange.price(symbol), entryTimeMs: now, leverage: 5, confidence: confidence,
            riskUSD: 50, waitForFill: true, exitPlanJSON: #"{"stop_loss_pct":2,"take_profit_pct":4}"#))
        let fill = await exchange.fill(symbol: symbol, buy: long, size: size)
        // The fill: actual price and size, and the entry fee.
        _ = try await store.savePosition(SavePositionRequest(modelID: id, symbol: symbol, quantity: fill.size, entryPrice: fill.price,
                                                             entryOID: fill.orderID, waitForFill: false, commission: fill.fee))
        // Protective orders.
        _ = try await store.savePosition(SavePositionRequest(modelID: id, symbol: symbol, tpOID: await exchange.placeTrigger(),
                                                             slOID: await exchange.placeTrigger()))
        positions[symbol] = Held(side: long ? .long : .short, quantity: fill.size, entryPrice: fill.price, entryTimeMs: now, entryFee: fill.fee)
        counts.opens += 1
    }

    private func close(_ symbol: String, size: Double?) async throws {
        guard let held = positions[symbol] else { return }
        let closing = size ?? held.quantity
        guard closing > 0 else { return }
        let fill = await exchange.fill(symbol: symbol, buy: held.side == .short, size: closing)
        let r = try await store.closePosition(ClosePositionRequest(
            modelID: id, symbol: symbol, exitPrice: fill.price, exitSize: size, exitTimeMs: await exchange.now,
            exitOID: fill.orderID, exitTID: fill.tradeID, exitCommission: fill.fee))
        realized += r.realizedNetPnl
        if r.fullyClosed {
            positions[symbol] = nil
            counts.fullCloses += 1
        } else {
            positions[symbol]?.quantity = r.remainingSize
            counts.partialCloses += 1
        }
        _ = try await store.publishTradeEvent(PublishTradeEventRequest(
            tradeID: "\(id)-\(fill.tradeID)-\(UInt32.random(in: 0...UInt32.max))", modelID: id, symbol: symbol, kind: "fill", side: held.side == .long ? .short : .long,
            price: fill.price, size: closing, fee: fill.fee, timestampMs: await exchange.now))
    }

    private func markAndSnapshot() async throws {
        var unrealized = 0.0
        var marks: [PositionMark] = []
        for (symbol, held) in positions.sorted(by: { $0.key < $1.key }) {
            let price = await exchange.price(symbol)
            let pnl = (price - held.entryPrice) * held.quantity * (held.side == .long ? 1 : -1)
            unrealized += pnl
            marks.append(PositionMark(symbol: symbol, currentPrice: price, unrealizedPnl: pnl))
        }
        let equity = startingEquity + realized + unrealized
        let pct = (equity - startingEquity) / startingEquity * 100
        let now = await exchange.now
        let snap = try await store.saveSnapshots(SaveSnapshotRequest(snapshots: [
            AccountSnapshot(modelID: id, timestampMs: now, dollarEquity: equity, realizedPnl: realized,
                            totalUnrealizedPnl: unrealized, cumPnlPct: pct, marks: marks),
        ]))
        counts.snapshotsStored += snap.results.filter(\.stored).count
        _ = try await store.updateAnalytics(UpdateAnalyticsRequest(entries: [ModelAnalytics(
            modelID: id, payloadJSON: #"{"total_pnl_usd":\#(realized + unrealized),"total_pnl_pct":\#(pct),"total_trades":\#(counts.closes)}"#,
            serverTimeMs: now)]))
        _ = try await store.saveTraderState(SaveTraderStateRequest(state: TraderState(
            traderID: id, exchangeProvider: "sim", marketProvider: "sim", allocationPct: 100 / 3,
            cooldownJSON: "{}", riskGuardsJSON: #"{"realized_usd":\#(realized)}"#, lastDecisionAtMs: now)))
    }
}
