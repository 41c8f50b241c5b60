import EngineStoreWire
import Foundation

/// An in-memory `PersistenceService` with the server's semantics, for engine unit tests:
/// one open position per (model, SYMBOL), partial updates, required open fields, idempotency keys
/// (the same key returns the first answer; the same key with another payload is a conflict).
public actor InMemoryPersistence: PersistenceService {
    public struct StoredPosition: Sendable, Equatable {
        public var id: String
        public var request: SavePositionRequest
        public var status: String
    }

    public private(set) var positions: [StoredPosition] = []
    public private(set) var trades: [TradeSnapshot] = []
    public private(set) var tradeEvents: [PublishTradeEventRequest] = []
    private var replies: [String: (SavePositionRequest, SavePositionResponse)] = [:]
    private var otherReplies: [String: (String, any Sendable)] = [:]
    public private(set) var snapshots: [AccountSnapshot] = []
    public private(set) var decisions: [RecordDecisionCycleRequest] = []
    public private(set) var conversations: [RecordConversationRequest] = []
    public private(set) var analytics: [String: ModelAnalytics] = [:]
    public private(set) var traderStates: [String: TraderState] = [:]
    /// Minimum interval between two stored snapshots of one trader, as the server's default.
    public var snapshotMinIntervalMs: Int64 = 300_000

    public func setSnapshotMinInterval(ms: Int64) { snapshotMinIntervalMs = ms }
    public private(set) var ticks: [PriceTick] = []
    /// Newest price per "provider|SYMBOL".
    public private(set) var latestPrices: [String: PriceTick] = [:]
    private var tickBatches: Set<String> = []

    public func ingestPriceTicks(_ request: IngestPriceTicksRequest) async throws -> IngestPriceTicksResponse {
        guard !request.ticks.isEmpty else { throw invalid("ticks", "at least one tick") }
        for t in request.ticks where !(t.price.isFinite && t.price > 0) || t.symbol.isEmpty {
            throw invalid(t.symbol.isEmpty ? "ticks.symbol" : "ticks.price", "invalid tick")
        }
        if !request.idempotencyKey.isEmpty, !tickBatches.insert(request.idempotencyKey).inserted {
            return IngestPriceTicksResponse(stored: UInt32(request.ticks.count), latestUpdated: 0)
        }
        var advanced = 0
        for var t in request.ticks {
            t.symbol = t.symbol.uppercased()
            ticks.append(t)
            let k = t.provider + "|" + t.symbol
            if (latestPrices[k]?.timestampMs ?? .min) < t.timestampMs {
                if latestPrices[k] == nil || latestPrices[k]!.timestampMs < t.timestampMs { advanced += 1 }
                latestPrices[k] = t
            }
        }
        return IngestPriceTicksResponse(stored: UInt32(request.ticks.count), latestUpdated: UInt32(advanced))
    }

    public func upsertMarketAssets(_ request: UpsertMarketAssetsRequest) async throws -> UpsertCountResponse {
        UpsertCountResponse(upserted: UInt32(request.assets.count))
    }

    public func upsertAssetContexts(_ request: UpsertAssetContextsRequest) async throws -> UpsertCountResponse {
        UpsertCountResponse(upserted: UInt32(request.contexts.count))
    }
    private var clock: Int64 = 1_700_000_000_000

    public init() {}

    public func health() async throws -> HealthResponse {
        HealthResponse(status: .ok, postgres: ComponentHealth(ok: true, latencyMicros: 0),
                       redis: ComponentHealth(ok: true, latencyMicros: 0), uptimeMs: 0, openConnections: 1,
                       instanceID: "in-memory", serverVersion: "fake")
    }

    public func savePosition(_ request: SavePositionRequest) async throws -> SavePositionResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let (previous, response) = replies[r.idempotencyKey] {
            guard previous == r else {
                throw EngineStoreError(code: .conflict, message: "idempotency key reused with a different request", retryable: false)
            }
            return response
        }
        guard !r.modelID.isEmpty else { throw invalid("model_id", "must not be empty") }
        guard !r.symbol.isEmpty else { throw invalid("symbol", "must not be empty") }
        for (value, name) in [(r.quantity, "quantity"), (r.entryPrice, "entry_price")] {
            if let v = value, !(v.isFinite && v > 0) { throw invalid(name, "must be positive and finite") }
        }
        let symbol = r.symbol.uppercased()
        clock += 1
        let response: SavePositionResponse
        if let i = positions.firstIndex(where: { $0.status == "open" && $0.request.modelID == r.modelID && $0.request.symbol == symbol }) {
            positions[i].request.merge(r)
            response = SavePositionResponse(positionID: positions[i].id, opened: false, updatedAtMs: clock)
        } else {
            if r.exchangeProvider == nil { throw invalid("exchange_provider", "required to open a position") }
            if r.side == nil { throw invalid("side", "required to open a position") }
            if r.quantity == nil { throw invalid("quantity", "required to open a position") }
            if r.entryPrice == nil { throw invalid("entry_price", "required to open a position") }
            if r.entryTimeMs == nil { throw invalid("entry_time_ms", "required to open a position") }
            var stored = r
            stored.symbol = symbol
            let id = "\(r.modelID)|\(symbol)|\(r.entryTimeMs ?? 0)|\(positions.count)"
            positions.append(StoredPosition(id: id, request: stored, status: "open"))
            response = SavePositionResponse(positionID: id, opened: true, updatedAtMs: clock)
        }
        replies[r.idempotencyKey] = (r, response)
        return response
    }

    public func closePosition(_ request: ClosePositionRequest) async throws -> ClosePositionResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let previous = try replay(r.idempotencyKey, "\(r)", as: ClosePositionResponse.self) { return previous }
        let symbol = r.symbol.uppercased()
        guard r.exitPrice.isFinite && r.exitPrice > 0 else { throw invalid("exit_price", "must be positive and finite") }
        guard let i = positions.firstIndex(where: { $0.status == "open" && $0.request.modelID == r.modelID && $0.request.symbol == symbol }) else {
            throw EngineStoreError(code: .notFound, message: "no open position for \(r.modelID) \(symbol)", retryable: false)
        }
        let p = positions[i].request
        let openSize = p.quantity ?? 0
        let size = r.exitSize ?? openSize
        guard size > 0, size <= openSize * (1 + 1e-9) else { throw invalid("exit_size", "more than the open size") }
        let full = size >= openSize * (1 - 1e-9)
        let direction: Double = p.side == .short ? -1 : 1
        let gross = (r.exitPrice - (p.entryPrice ?? 0)) * size * direction
        let entryShare = (p.commission ?? 0) * min(1, size / max(openSize, .leastNonzeroMagnitude))
        let exitFee = r.exitCommission ?? 0
        let net = gross - entryShare - exitFee
        if full {
            positions[i].status = "closed"
        } else {
            positions[i].request.quantity = openSize - size
            positions[i].request.commission = p.commission.map { $0 - entryShare }
        }
        clock += 1
        trades.insert(TradeSnapshot(modelID: r.modelID, symbol: symbol, side: p.side ?? .long, quantity: size,
                                    entryPrice: p.entryPrice ?? 0, exitPrice: r.exitPrice, realizedPnl: net,
                                    confidence: p.confidence, closedAtMs: r.exitTimeMs, exchange: p.exchangeProvider ?? "",
                                    entryTimeMs: p.entryTimeMs ?? 0, leverage: p.leverage,
                                    positionSize: size), at: 0)
        let response = ClosePositionResponse(
            tradeRowID: "\(r.modelID)|\(symbol)|\(r.exitTimeMs)|\(trades.count)", positionID: positions[i].id,
            fullyClosed: full, closedSize: size, remainingSize: full ? 0 : openSize - size,
            realizedGrossPnl: gross, realizedNetPnl: net, totalCommission: entryShare + exitFee)
        otherReplies[r.idempotencyKey] = ("\(r)", response)
        return response
    }

    public func publishTradeEvent(_ request: PublishTradeEventRequest) async throws -> PublishTradeEventResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let previous = try replay(r.idempotencyKey, "\(r)", as: PublishTradeEventResponse.self) { return previous }
        guard !r.tradeID.isEmpty else { throw invalid("trade_id", "must not be empty") }
        let duplicate = tradeEvents.contains { $0.tradeID == r.tradeID }
        if !duplicate { tradeEvents.append(r) }
        let response = PublishTradeEventResponse(duplicate: duplicate, eventID: r.tradeID)
        otherReplies[r.idempotencyKey] = ("\(r)", response)
        return response
    }

    public func openPositions(model: String) async throws -> GetOpenPositionsResponse {
        let list = openPositions(model: model).map { p in
            PositionSnapshot(symbol: p.request.symbol, side: p.request.side ?? .long, quantity: p.request.quantity ?? 0,
                             entryPrice: p.request.entryPrice ?? 0, leverage: p.request.leverage,
                             confidence: p.request.confidence, riskUSD: p.request.riskUSD, updatedAtMs: clock,
                             exchange: p.request.exchangeProvider ?? "")
        }
        return GetOpenPositionsResponse(positions: list.sorted { $0.symbol < $1.symbol }, source: .cache)
    }

    public func recentTrades(model: String, limit: Int) async throws -> GetRecentTradesResponse {
        GetRecentTradesResponse(trades: Array(trades.filter { $0.modelID == model }.prefix(limit)), source: .cache)
    }

    public func saveSnapshots(_ request: SaveSnapshotRequest) async throws -> SaveSnapshotResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let previous = try replay(r.idempotencyKey, "\(r)", as: SaveSnapshotResponse.self) { return previous }
        var results: [SnapshotResult] = []
        for s in r.snapshots {
            var applied: UInt32 = 0
            for m in s.marks {
                if let i = positions.firstIndex(where: { $0.status == "open" && $0.request.modelID == s.modelID && $0.request.symbol == m.symbol.uppercased() }) {
                    positions[i].request.currentPrice = m.currentPrice
                    positions[i].request.unrealizedPnl = m.unrealizedPnl ?? positions[i].request.unrealizedPnl
                    applied += 1
                }
            }
            let last = snapshots.filter { $0.modelID == s.modelID }.map(\.timestampMs).max()
            let throttled = last.map { $0 != s.timestampMs && snapshotMinIntervalMs > 0 && abs(s.timestampMs - $0) < snapshotMinIntervalMs } ?? false
            if !throttled {
                snapshots.removeAll { $0.modelID == s.modelID && $0.timestampMs == s.timestampMs }
                snapshots.append(s)
            }
            results.append(SnapshotResult(modelID: s.modelID, stored: !throttled,
                                          lastStoredMs: throttled ? last! : max(last ?? s.timestampMs, s.timestampMs), marksApplied: applied))
        }
        let response = SaveSnapshotResponse(results: results)
        otherReplies[r.idempotencyKey] = ("\(r)", response)
        return response
    }

    public func recordDecisionCycle(_ request: RecordDecisionCycleRequest) async throws -> RecordDecisionCycleResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let previous = try replay(r.idempotencyKey, "\(r)", as: RecordDecisionCycleResponse.self) { return previous }
        clock += 1
        decisions.append(r)
        let response = RecordDecisionCycleResponse(id: Int64(decisions.count), executedAtMs: r.executedAtMs ?? clock)
        otherReplies[r.idempotencyKey] = ("\(r)", response)
        return response
    }

    public func recordConversation(_ request: RecordConversationRequest) async throws -> RecordConversationResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let previous = try replay(r.idempotencyKey, "\(r)", as: RecordConversationResponse.self) { return previous }
        guard !r.prompt.isEmpty else { throw invalid("prompt", "must not be empty") }
        clock += 1
        conversations.append(r)
        let response = RecordConversationResponse(conversationID: Int64(conversations.count), timestampMs: r.timestampMs ?? clock)
        otherReplies[r.idempotencyKey] = ("\(r)", response)
        return response
    }

    public func updateAnalytics(_ request: UpdateAnalyticsRequest) async throws -> UpdateAnalyticsResponse {
        var updated: UInt32 = 0
        for e in request.entries where (analytics[e.modelID]?.serverTimeMs ?? .min) <= e.serverTimeMs {
            analytics[e.modelID] = e
            updated += 1
        }
        return UpdateAnalyticsResponse(updated: updated)
    }

    public func saveTraderState(_ request: SaveTraderStateRequest) async throws -> TraderStateResponse {
        let s = request.state
        var stored = traderStates[s.traderID] ?? TraderState(traderID: s.traderID)
        if traderStates[s.traderID] == nil, s.exchangeProvider == nil || s.marketProvider == nil {
            throw invalid("state.exchange_provider", "required for a new trader")
        }
        stored.exchangeProvider = s.exchangeProvider ?? stored.exchangeProvider
        stored.marketProvider = s.marketProvider ?? stored.marketProvider
        stored.allocationPct = s.allocationPct ?? stored.allocationPct
        stored.cooldownJSON = s.cooldownJSON ?? stored.cooldownJSON
        stored.riskGuardsJSON = s.riskGuardsJSON ?? stored.riskGuardsJSON
        stored.lastDecisionAtMs = s.lastDecisionAtMs ?? stored.lastDecisionAtMs
        stored.pauseUntilMs = s.pauseUntilMs ?? stored.pauseUntilMs
        clock += 1
        stored.updatedAtMs = clock
        traderStates[s.traderID] = stored
        return TraderStateResponse(state: stored, source: .postgres)
    }

    public func traderState(trader: String) async throws -> TraderStateResponse {
        guard let s = traderStates[trader] else {
            throw EngineStoreError(code: .notFound, message: "no state stored for trader \(trader)", retryable: false)
        }
        return TraderStateResponse(state: s, source: .cache)
    }

    public func lastDecision(model: String) async throws -> LastDecision {
        guard let d = decisions.last(where: { $0.modelID == model }) else {
            throw EngineStoreError(code: .notFound, message: "no decision cycle recorded for \(model)", retryable: false)
        }
        return LastDecision(modelID: model, success: d.success, timestampMs: d.executedAtMs ?? clock, symbol: nil,
                            action: nil, confidence: nil, error: d.errorMessage, source: .cache)
    }

    public func leaderboard(limit: Int) async throws -> GetLeaderboardResponse {
        let entries = analytics.values.compactMap { a -> LeaderboardEntry? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(a.payloadJSON.utf8)) as? [String: Any],
                  let pct = (o["total_pnl_pct"] as? NSNumber)?.doubleValue else { return nil }
            return LeaderboardEntry(modelID: a.modelID, score: pct)
        }.sorted { ($0.score, $1.modelID) > ($1.score, $0.modelID) }
        return GetLeaderboardResponse(entries: Array(entries.prefix(limit)), source: .cache)
    }

    private func replay<R>(_ key: String, _ fingerprint: String, as _: R.Type) throws -> R? {
        guard let (previous, response) = otherReplies[key] else { return nil }
        guard previous == fingerprint, let r = response as? R else {
            throw EngineStoreError(code: .conflict, message: "idempotency key reused with a different request", retryable: false)
        }
        return r
    }

    /// Open positions of a model, as the server's hash would hold them.
    public func openPositions(model: String) -> [StoredPosition] {
        positions.filter { $0.status == "open" && $0.request.modelID == model }
    }

    private func invalid(_ field: String, _ reason: String) -> EngineStoreError {
        EngineStoreError(code: .invalidArgument, message: "\(field): \(reason)", retryable: false, field: field)
    }
}

extension SavePositionRequest {
    /// Applies the fields `other` sets (a partial update).
    mutating func merge(_ o: SavePositionRequest) {
        exchangeProvider = o.exchangeProvider ?? exchangeProvider
        side = o.side ?? side
        quantity = o.quantity ?? quantity
        entryPrice = o.entryPrice ?? entryPrice
        entryTimeMs = o.entryTimeMs ?? entryTimeMs
        leverage = o.leverage ?? leverage
        confidence = o.confidence ?? confidence
        riskUSD = o.riskUSD ?? riskUSD
        margin = o.margin ?? margin
        entryOID = o.entryOID ?? entryOID
        tpOID = o.tpOID ?? tpOID
        slOID = o.slOID ?? slOID
        waitForFill = o.waitForFill ?? waitForFill
        exitPlanJSON = o.exitPlanJSON ?? exitPlanJSON
        indexJSON = o.indexJSON ?? indexJSON
        currentPrice = o.currentPrice ?? currentPrice
        unrealizedPnl = o.unrealizedPnl ?? unrealizedPnl
        liquidationPrice = o.liquidationPrice ?? liquidationPrice
        commission = o.commission ?? commission
        slippage = o.slippage ?? slippage
    }
}
