import EngineStoreWire

/// Positions, trades and trade events of the in-memory fake.
extension InMemoryPersistence {
    public func savePosition(_ request: SavePositionRequest) async throws -> SavePositionResponse {
        try once(request) { r in
            guard !r.modelID.isEmpty else { throw invalid("model_id", "must not be empty") }
            guard !r.symbol.isEmpty else { throw invalid("symbol", "must not be empty") }
            for (value, name) in [(r.quantity, "quantity"), (r.entryPrice, "entry_price")] {
                if let v = value, !(v.isFinite && v > 0) { throw invalid(name, "must be positive and finite") }
            }
            let symbol = r.symbol.uppercased()
            clock += 1
            if let i = openIndex(model: r.modelID, symbol: symbol) {
                positions[i].request.merge(r)
                return SavePositionResponse(positionID: positions[i].id, opened: false, updatedAtMs: clock)
            }
            let missing: [(Bool, String)] = [(r.exchangeProvider == nil, "exchange_provider"), (r.side == nil, "side"),
                                             (r.quantity == nil, "quantity"), (r.entryPrice == nil, "entry_price"),
                                             (r.entryTimeMs == nil, "entry_time_ms")]
            if let (_, field) = missing.first(where: \.0) { throw invalid(field, "required to open a position") }
            var stored = r
            stored.symbol = symbol
            let id = "\(r.modelID)|\(symbol)|\(r.entryTimeMs ?? 0)|\(positions.count)"
            positions.append(StoredPosition(id: id, request: stored, status: "open"))
            return SavePositionResponse(positionID: id, opened: true, updatedAtMs: clock)
        }
    }

    public func closePosition(_ request: ClosePositionRequest) async throws -> ClosePositionResponse {
        try once(request) { r in
            let symbol = r.symbol.uppercased()
            guard r.exitPrice.isFinite && r.exitPrice > 0 else { throw invalid("exit_price", "must be positive and finite") }
            guard let i = openIndex(model: r.modelID, symbol: symbol) else {
                throw notFound("no open position for \(r.modelID) \(symbol)")
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
            return ClosePositionResponse(
                tradeRowID: "\(r.modelID)|\(symbol)|\(r.exitTimeMs)|\(trades.count)", positionID: positions[i].id,
                fullyClosed: full, closedSize: size, remainingSize: full ? 0 : openSize - size,
                realizedGrossPnl: gross, realizedNetPnl: net, totalCommission: entryShare + exitFee)
        }
    }

    public func publishTradeEvent(_ request: PublishTradeEventRequest) async throws -> PublishTradeEventResponse {
        try once(request) { r in
            guard !r.tradeID.isEmpty else { throw invalid("trade_id", "must not be empty") }
            let duplicate = tradeEvents.contains { $0.tradeID == r.tradeID }
            if !duplicate { tradeEvents.append(r) }
            return PublishTradeEventResponse(duplicate: duplicate, eventID: r.tradeID)
        }
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
