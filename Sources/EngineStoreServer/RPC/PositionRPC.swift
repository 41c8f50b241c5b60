import EngineStoreWire
import Foundation
import Hiredis
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
            var request = try SavePositionRequest.decodeRequest(payload)
            request.symbol = try Self.validate(request, maxClockSkewMs: context.configuration.maxClockSkewMs)
            context.postgres.submit(IdempotentWrite(
                key: request.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: SavePositionBody(request: request, keys: context.keys, ttl: ttl.positions), reply: reply))
        case .closePosition:
            var request = try ClosePositionRequest.decodeRequest(payload)
            request.symbol = try Self.validate(request, maxClockSkewMs: context.configuration.maxClockSkewMs)
            context.postgres.submit(IdempotentWrite(
                key: request.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: ClosePositionBody(request: request, keys: context.keys, ttl: ttl,
                                        streamMaxLength: context.configuration.streamMaxLength),
                reply: reply))
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

    /// Checks every field that was sent; returns the normalised (upper-case) symbol.
    static func validate(_ r: SavePositionRequest, maxClockSkewMs: Int64) throws(ServiceError) -> String {
        try Validate.identifier(r.idempotencyKey, "idempotency_key")
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
        try Validate.identifier(r.idempotencyKey, "idempotency_key")
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

// MARK: - Shared row shapes

/// Columns every position statement returns, in this order, to build the cache JSON.
let positionColumns = """
    id, symbol, side, quantity, entry_price, leverage, confidence, risk_usd, exchange_provider,
    (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, cache_version
    """

/// One position row in the shape of `positionColumns`.
struct PositionRow {
    var id: String
    var symbol: String
    var side: String
    var quantity: Double
    var entryPrice: Double
    var leverage: Double?
    var confidence: Double?
    var riskUSD: Double?
    var exchange: String
    var updatedAtMs: Int64
    /// Orders this row's cache writes (see `CacheVersion`).
    var version: Int64

    init(_ r: PGResult, _ i: Int) {
        id = r.string(i, 0) ?? ""
        symbol = r.string(i, 1) ?? ""
        side = r.string(i, 2) ?? "long"
        quantity = r.double(i, 3) ?? 0
        entryPrice = r.double(i, 4) ?? 0
        leverage = r.double(i, 5)
        confidence = r.double(i, 6)
        riskUSD = r.double(i, 7)
        exchange = r.string(i, 8) ?? ""
        updatedAtMs = r.int(i, 9) ?? 0
        version = r.int(i, 10) ?? 0
    }

    /// This row as the positions hash field it caches.
    func cacheMutation(_ keys: CacheKeys, model: String, ttl: Int) -> CacheMutation {
        let key = keys.positions(model: model)
        return .positionSet(key: key, versionKey: keys.version(of: key), field: symbol, value: json,
                            version: CacheVersion.of(version), ttlSeconds: ttl)
    }

    /// The position document (proto-spec §10.12): symbol, side, quantity, entry_price, leverage, confidence,
    /// risk_usd, updated_at_ms, exchange.
    var json: String {
        var j = JSONObjectWriter()
        j.string("symbol", symbol)
        j.string("side", side)
        j.number("quantity", quantity)
        j.number("entry_price", entryPrice)
        j.number("leverage", leverage)
        j.number("confidence", confidence)
        j.number("risk_usd", riskUSD)
        j.int("updated_at_ms", updatedAtMs)
        j.string("exchange", exchange)
        return j.finish()
    }

    var snapshot: PositionSnapshot {
        PositionSnapshot(symbol: symbol, side: side == "short" ? .short : .long, quantity: quantity, entryPrice: entryPrice,
                         leverage: leverage, confidence: confidence, riskUSD: riskUSD, updatedAtMs: updatedAtMs, exchange: exchange)
    }
}

let openPositionsOfModel = Statement(name: "positions_open_of_model", sql: """
    SELECT \(positionColumns) FROM positions WHERE model_id = $1 AND status = 'open' ORDER BY symbol
    """)

// MARK: - SavePosition

/// The SET list of an update that changes only the columns whose parameter is not NULL.
private let updateAssignments = """

        exchange_provider = COALESCE($3, exchange_provider),
        side = COALESCE($4, side),
        quantity = COALESCE($5::float8, quantity),
        entry_price = COALESCE($6::float8, entry_price),
        entry_time_ms = COALESCE($7::int8, entry_time_ms),
        leverage = COALESCE($8::float8, leverage),
        confidence = COALESCE($9::float8, confidence),
        risk_usd = COALESCE($10::float8, risk_usd),
        margin = COALESCE($11::float8, margin),
        entry_oid = COALESCE($12::int8, entry_oid),
        tp_oid = COALESCE($13::int8, tp_oid),
        sl_oid = COALESCE($14::int8, sl_oid),
        wait_for_fill = COALESCE($15::bool, wait_for_fill),
        exit_plan = COALESCE($16::jsonb, exit_plan),
        index_col = COALESCE($17::jsonb, index_col),
        current_price = COALESCE($18::float8, current_price),
        unrealized_pnl = COALESCE($19::float8, unrealized_pnl),
        liquidation_price = COALESCE($20::float8, liquidation_price),
        commission = COALESCE($21::float8, commission),
        slippage = COALESCE($22::float8, slippage),
        updated_at = now(),
        cache_version = nextval('engine_store_cache_version')
    """

private let updateOpen = Statement(name: "position_update_open", sql: """
    UPDATE positions SET \(updateAssignments)
    WHERE model_id = $1 AND symbol = $2 AND status = 'open'
    RETURNING \(positionColumns)
    """)

/// The pipelined SavePosition: update-or-open, the idempotency record with the reply, and the outbox
/// row in one statement. The INSERT runs only when the UPDATE found nothing open; a concurrent open
/// makes both empty (nothing written, the job falls back to the step-by-step path). The reply is
/// SavePositionResponse encoded exactly as `FieldWriter` does (field 1 position_id, 2 opened,
/// 3 updated_at_ms as ZigZag varint). A key already recorded makes the INSERT fail: the batch falls
/// back to the step-by-step path, which replays.
private func recordingSave(insert: Bool) -> String {
    let (key, digest) = insert ? (24, 25) : (23, 24)
    let ins = insert ? """
        INSERT INTO positions (
            model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
            confidence, risk_usd, margin, entry_oid, tp_oid, sl_oid, wait_for_fill, exit_plan, index_col,
            current_price, unrealized_pnl, liquidation_price, commission, slippage, id, status)
        SELECT $1, $2, $3, $4, $5::float8, $6::float8, $7::int8, $8::float8, $9::float8, $10::float8, $11::float8,
               $12::int8, $13::int8, $14::int8, COALESCE($15::bool, false), $16::jsonb, $17::jsonb, $18::float8,
               $19::float8, $20::float8, $21::float8, $22::float8, $23, 'open'
        WHERE NOT EXISTS (SELECT 1 FROM upd)
        ON CONFLICT (model_id, symbol) WHERE status = 'open' DO NOTHING
        RETURNING \(positionColumns)
        """ : "SELECT * FROM upd WHERE false"
    return """
        WITH upd AS (
            UPDATE positions SET \(updateAssignments)
            WHERE model_id = $1 AND symbol = $2 AND status = 'open'
            RETURNING \(positionColumns)
        ), ins AS (\(ins)),
        res AS (SELECT *, false AS opened FROM upd UNION ALL SELECT *, true FROM ins),
        idem AS (
            INSERT INTO engine_store_idempotency (key, method, digest, response)
            SELECT $\(key), \(Method.savePosition.rawValue), $\(digest),
                   '\\x0a'::bytea || engine_store_varint(octet_length(convert_to(id, 'UTF8'))) || convert_to(id, 'UTF8')
                   || '\\x10'::bytea || CASE WHEN opened THEN '\\x01'::bytea ELSE '\\x00'::bytea END
                   || '\\x18'::bytea || engine_store_varint(updated_ms * 2)
            FROM res
        ),
        ob AS (INSERT INTO engine_store_outbox (kind, subject, ref) SELECT 'position', $1, $2 FROM res RETURNING id)
        SELECT res.*, (SELECT id FROM ob) AS outbox_id FROM res
        """
}

private let upsertOpenRecording = Statement(name: "position_upsert_open_recording", sql: recordingSave(insert: true))
private let updateOpenRecording = Statement(name: "position_update_open_recording", sql: recordingSave(insert: false))

/// Opens a new lifecycle row; does nothing if another transaction opened one first (the unique
/// partial index decides), in which case the caller updates that one instead.
private let insertOpen = Statement(name: "position_insert_open", sql: """
    INSERT INTO positions (
        model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
        confidence, risk_usd, margin, entry_oid, tp_oid, sl_oid, wait_for_fill, exit_plan, index_col,
        current_price, unrealized_pnl, liquidation_price, commission, slippage, id, status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, COALESCE($15::bool, false),
            $16::jsonb, $17::jsonb, $18, $19, $20, $21, $22, $23, 'open')
    ON CONFLICT (model_id, symbol) WHERE status = 'open' DO NOTHING
    RETURNING \(positionColumns)
    """)

struct SavePositionBody: PipelinableWrite {
    let request: SavePositionRequest
    let keys: CacheKeys
    let ttl: Int

    var params: [String?] {
        let r = request
        return [
            r.modelID, r.symbol, r.exchangeProvider, r.side?.description,
            r.quantity.map(pgText), r.entryPrice.map(pgText), r.entryTimeMs.map(String.init),
            r.leverage.map(pgText), r.confidence.map(pgText), r.riskUSD.map(pgText), r.margin.map(pgText),
            r.entryOID.map(String.init), r.tpOID.map(String.init), r.slOID.map(String.init),
            r.waitForFill.map { $0 ? "true" : "false" }, r.exitPlanJSON, r.indexJSON,
            r.currentPrice.map(pgText), r.unrealizedPnl.map(pgText), r.liquidationPrice.map(pgText),
            r.commission.map(pgText), r.slippage.map(pgText),
        ]
    }

    var hasOpenFields: Bool {
        request.exchangeProvider != nil && request.side != nil && request.quantity != nil && request.entryPrice != nil
            && request.entryTimeMs != nil
    }

    /// No snapshot read on the hot path: if the hash is missing, the cache writer leaves this write's
    /// outbox row to the relay, which rebuilds the hash whole (see CacheScripts).
    func pipelined(key: String, digest: String) -> [(Statement, [String?])] {
        let write = hasOpenFields
            ? (upsertOpenRecording, params + [Self.newPositionID(request), key, digest])
            : (updateOpenRecording, params + [key, digest])
        return [write]
    }

    func outcome(_ results: [PGResult]) throws -> JobOutcome {
        let written = results[0]
        guard written.rowCount == 1 else { throw PipelineFallback() }
        let opened = written.columnCount > 11 ? written.bool(0, 11) ?? false : false
        var outcome = makeOutcome(PositionRow(written, 0), opened: opened)
        if written.columnCount > 12, let id = written.int(0, 12) { outcome.outboxIDs = [id] }
        return outcome
    }

    var lockKeys: [String] { [LockOrder.position(request.modelID, request.symbol)] }

    /// A missing hash is not built here: the cache writer hands it to the relay, which builds it whole.
    func makeOutcome(_ row: PositionRow, opened: Bool) -> JobOutcome {
        let response = SavePositionResponse(positionID: row.id, opened: opened, updatedAtMs: row.updatedAtMs)
        return JobOutcome(reply: response.encodedPayload(),
                          cacheMutations: [row.cacheMutation(keys, model: request.modelID, ttl: ttl)])
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        var params = self.params
        var opened = false
        var result = try session.run(updateOpen, params)
        if result.rowCount == 0 {
            try Self.requireOpenFields(r)
            params.append(Self.newPositionID(r))
            result = try session.run(insertOpen, params)
            if result.rowCount == 1 {
                opened = true
            } else {
                // Another request opened it between our UPDATE and INSERT: apply ours as an update.
                params.removeLast()
                result = try session.run(updateOpen, params)
            }
        }
        guard result.rowCount == 1 else {
            throw ServiceError(.internalError, "position neither updated nor inserted")
        }
        var outcome = makeOutcome(PositionRow(result, 0), opened: opened)
        outcome.outboxIDs = try Outbox.record(session, [.position(model: r.modelID, symbol: r.symbol)])
        return outcome
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

func randomSuffix() -> String {
    var rng = SystemRandomNumberGenerator()
    let s = String(rng.next() as UInt32, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

/// Shortest text that reads back as the same double.
@inline(__always)
func pgText(_ d: Double) -> String { "\(d)" }
