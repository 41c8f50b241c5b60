import EngineStoreWire
import LibPQ

/// Positions and trades: SavePosition, ClosePosition, GetOpenPositions, GetRecentTrades.
/// Writes go Postgres first (inside `IdempotentWrite`); Redis follows the commit through the cache writer.
struct PositionRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.savePosition, .closePosition, .getOpenPositions, .getRecentTrades] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let ttl = context.configuration.ttl
        switch method {
        case .savePosition:
            var request = try SavePositionRequest.decodeWrite(payload)
            request.symbol = try Self.validate(request, maxClockSkewMs: context.configuration.maxClockSkewMs)
            context.submitWrite(request, method, payload: payload,
                body: SavePositionBody(request: request, keys: context.keys, ttl: ttl.positions), reply: reply)
        case .closePosition:
            var request = try ClosePositionRequest.decodeWrite(payload)
            request.symbol = try Self.validate(request, maxClockSkewMs: context.configuration.maxClockSkewMs)
            context.submitWrite(request, method, payload: payload,
                body: ClosePositionBody(request: request, keys: context.keys, ttl: ttl,
                                        streamMaxLength: context.configuration.streamMaxLength),
                reply: reply)
        case .getOpenPositions:
            let request = try GetOpenPositionsRequest.decodeRequest(payload)
            try Validate.keyPart(request.modelID, "model_id")
            PositionReads(context: context).openPositions(model: request.modelID, reply: reply)
        case .getRecentTrades:
            let request = try GetRecentTradesRequest.decodeRequest(payload)
            try Validate.keyPart(request.modelID, "model_id")
            guard (1...100).contains(request.limit) else { throw .invalid("limit", "must be 1 to 100") }
            PositionReads(context: context).recentTrades(model: request.modelID, limit: Int(request.limit), reply: reply)
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }

    /// Checks every field that was sent (the idempotency key is checked on decoding); returns the
    /// normalised (upper-case) symbol.
    static func validate(_ r: SavePositionRequest, maxClockSkewMs: Int64) throws(ServiceError) -> String {
        try Validate.keyPart(r.modelID, "model_id")
        let symbol = try Validate.symbol(r.symbol)
        if let p = r.exchangeProvider { try Validate.identifier(p, "exchange_provider", maxBytes: 64) }
        try Validate.positive(r.quantity, "quantity")
        try Validate.positive(r.entryPrice, "entry_price")
        try Validate.timestampMs(r.entryTimeMs, "entry_time_ms", maxSkewMs: maxClockSkewMs)
        try Validate.positive(r.leverage, "leverage")
        try Validate.finite(r.confidence, "confidence")
        try Validate.finite(r.riskUSD, "risk_usd")
        try Validate.nonNegative(r.margin, "margin")
        try Validate.orderID(r.entryOID, "entry_oid")
        try Validate.orderID(r.tpOID, "tp_oid")
        try Validate.orderID(r.slOID, "sl_oid")
        try Validate.json(r.exitPlanJSON, "exit_plan_json")
        try Validate.json(r.indexJSON, "index_json")
        try Validate.positive(r.currentPrice, "current_price")
        try Validate.finite(r.unrealizedPnl, "unrealized_pnl")
        try Validate.nonNegative(r.liquidationPrice, "liquidation_price")
        try Validate.nonNegative(r.commission, "commission")
        try Validate.finite(r.slippage, "slippage")
        // Computed from these fields (the trade document's position_size, PnL at close): finite, or
        // Inf/NaN would reach Postgres and Redis later. Each factor alone is finite here.
        if let q = r.quantity, let p = r.entryPrice, !(q * p).isFinite {
            throw .invalid("quantity", "quantity × entry_price (\(q) × \(p)) is not a finite position size")
        }
        if let q = r.quantity, let p = r.currentPrice, !(q * p).isFinite {
            throw .invalid("current_price", "quantity × current_price (\(q) × \(p)) is not a finite notional")
        }
        return symbol
    }

    static func validate(_ r: ClosePositionRequest, maxClockSkewMs: Int64) throws(ServiceError) -> String {
        try Validate.keyPart(r.modelID, "model_id")
        let symbol = try Validate.symbol(r.symbol)
        try Validate.positive(r.exitPrice, "exit_price")
        try Validate.positive(r.exitSize, "exit_size")
        try Validate.timestampMs(r.exitTimeMs, "exit_time_ms", maxSkewMs: maxClockSkewMs)
        try Validate.orderID(r.exitOID, "exit_oid")
        try Validate.orderID(r.exitTID, "exit_tid")
        try Validate.nonNegative(r.exitCommission, "exit_commission")
        try Validate.json(r.exitLiquidationJSON, "exit_liquidation_json")
        if let t = r.tradeID { try Validate.identifier(t, "trade_id") }
        if let t = r.tradeType { try Validate.identifier(t, "trade_type", maxBytes: 32) }
        return symbol
    }
}

// MARK: - SavePosition

/// One statement on both paths (see SQL `position_save`): pipelined, it also records the reply;
/// step by step (after `IdempotentWrite` claimed the key), the reply is recorded from Swift.
struct SavePositionBody: PipelinableWrite, BatchableWrite {
    let request: SavePositionRequest
    let keys: CacheKeys
    let ttl: Int

    var hasOpenFields: Bool {
        request.exchangeProvider != nil && request.side != nil && request.quantity != nil && request.entryPrice != nil
            && request.entryTimeMs != nil
    }

    var lockKeys: [String] { [LockOrder.position(request.modelID, request.symbol)] }

    func save(recording record: (key: String, digest: String)?) -> PGCall {
        hasOpenFields ? PositionStore.Save(request: request, record: record, newID: Self.newPositionID(request)).call
            : PositionStore.SaveExisting(request: request, record: record).call
    }

    /// No snapshot read on the hot path: if the hash is missing, the cache writer leaves this write's
    /// outbox row to the relay, which rebuilds the hash whole (see CacheScripts).
    func pipelined(key: String, digest: String) -> [PGCall] { [save(recording: (key, digest))] }

    func outcome(_ results: [PGResult]) throws -> JobOutcome {
        guard results[0].rowCount == 1 else { throw PipelineFallback() }
        return makeOutcome(PositionStore.Save.decode(PGRow(results[0], 0)))
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let first = try session.run(save(recording: nil))
        if first.rowCount == 1 { return makeOutcome(PositionStore.Save.decode(PGRow(first, 0))) }
        // Nothing open: a request that cannot open says which field is missing.
        if !hasOpenFields { try Self.requireOpenFields(request) }
        // Another request opened it between our snapshot and insert: apply ours as an update.
        guard let saved = try session.first(PositionStore.SaveExisting(request: request, record: nil)) else {
            throw ServiceError(.internalError, "position neither updated nor inserted")
        }
        return makeOutcome(saved)
    }

    /// A request that can open shares `position_open_batch` with the others of its batch.
    func batchRow() -> (statement: SQLText, row: [String?])? {
        guard hasOpenFields else { return nil }
        return (SQLText.positionOpenBatch, PositionStore.fields(request) + [Self.newPositionID(request)])
    }

    func outcome(batchRow row: PGRow, recorded: BatchReplies?) -> JobOutcome { makeOutcome(PositionStore.Save.decode(row)) }

    /// position_open_batch's rows carry no `ord`: their model and symbol name the request.
    func slot(ofResultRow row: PGRow) -> String? {
        guard let model = row.string("model_id"), let symbol = row.string("symbol") else { return nil }
        return LockOrder.position(model, symbol)
    }

    /// A missing hash is not built here: the cache writer hands it to the relay, which builds it whole.
    func makeOutcome(_ saved: PositionStore.Saved) -> JobOutcome {
        let response = SavePositionResponse(positionID: saved.row.id, opened: saved.opened, updatedAtMs: saved.row.updatedAtMs)
        return JobOutcome(reply: response.encodedPayload(),
                          cacheMutations: [saved.row.cacheMutation(keys, model: request.modelID, ttl: ttl)],
                          outboxIDs: saved.outboxID.map { [$0] } ?? [])
    }

    /// Opening (no open row yet) needs the fields the table cannot default.
    static func requireOpenFields(_ r: SavePositionRequest) throws(ServiceError) {
        if r.exchangeProvider == nil { throw .invalid("exchange_provider", "required to open a position") }
        if r.side == nil { throw .invalid("side", "required to open a position") }
        if r.quantity == nil { throw .invalid("quantity", "required to open a position") }
        if r.entryPrice == nil { throw .invalid("entry_price", "required to open a position") }
        if r.entryTimeMs == nil { throw .invalid("entry_time_ms", "required to open a position") }
    }

    /// One id per lifecycle: `<model>|<SYMBOL>|<entry_time_ms>|<random>`, so a reopen never reuses a closed row.
    static func newPositionID(_ r: SavePositionRequest) -> String {
        "\(r.modelID)|\(r.symbol)|\(r.entryTimeMs ?? 0)|\(randomSuffix())"
    }
}
