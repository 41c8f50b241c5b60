import EngineStoreWire
import LibPQ

/// Positions: SavePosition (open, or update the open one). Postgres first; after the commit the
/// position JSON goes to `nof0:positions:<model_id>` (HSET field SYMBOL, then EXPIRE).
struct PositionRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.savePosition] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        var request = try SavePositionRequest.decodeRequest(payload)
        request.symbol = try Self.validate(request)
        context.postgres.submit(SavePositionJob(request: request, reply: reply, keys: context.keys,
                                                ttl: context.configuration.ttl.positions))
    }

    /// Checks every field that was sent; returns the normalised (upper-case) symbol.
    static func validate(_ r: SavePositionRequest) throws(ServiceError) -> String {
        try Validate.identifier(r.idempotencyKey, "idempotency_key")
        try Validate.identifier(r.modelID, "model_id")
        let symbol = try Validate.symbol(r.symbol)
        if let p = r.exchangeProvider { try Validate.identifier(p, "exchange_provider", maxBytes: 64) }
        try Validate.positive(r.quantity, "quantity")
        try Validate.positive(r.entryPrice, "entry_price")
        try Validate.timestampMs(r.entryTimeMs, "entry_time_ms")
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
        try Validate.finite(r.commission, "commission")
        try Validate.finite(r.slippage, "slippage")
        return symbol
    }
}

/// The columns every position statement returns, in this order, to build the cache JSON.
private let returning = """
    RETURNING id, side, quantity, entry_price, leverage, confidence, risk_usd, exchange_provider,
              (extract(epoch FROM updated_at) * 1000)::bigint
    """

/// Changes only the columns whose parameter is not NULL.
private let updateOpen = Statement(name: "position_update_open", sql: """
    UPDATE positions SET
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
        updated_at = now()
    WHERE model_id = $1 AND symbol = $2 AND status = 'open'
    \(returning)
    """)

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
    \(returning)
    """)

struct SavePositionJob: PostgresJob {
    let request: SavePositionRequest
    let reply: ReplyTarget
    let keys: CacheKeys
    let ttl: Int

    var deadlineNanos: UInt64 { reply.deadlineNanos }
    var isTransactional: Bool { true }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        var params: [String?] = [
            r.modelID, r.symbol, r.exchangeProvider, r.side?.description,
            r.quantity.map(pgText), r.entryPrice.map(pgText), r.entryTimeMs.map(String.init),
            r.leverage.map(pgText), r.confidence.map(pgText), r.riskUSD.map(pgText), r.margin.map(pgText),
            r.entryOID.map(String.init), r.tpOID.map(String.init), r.slOID.map(String.init),
            r.waitForFill.map { $0 ? "true" : "false" }, r.exitPlanJSON, r.indexJSON,
            r.currentPrice.map(pgText), r.unrealizedPnl.map(pgText), r.liquidationPrice.map(pgText),
            r.commission.map(pgText), r.slippage.map(pgText),
        ]
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
        let updatedAtMs = result.int(0, 8) ?? epochMillis()
        var json = JSONObjectWriter()
        json.string("symbol", r.symbol)
        json.string("side", result.string(0, 1))
        json.number("quantity", result.double(0, 2))
        json.number("entry_price", result.double(0, 3))
        json.number("leverage", result.double(0, 4))
        json.number("confidence", result.double(0, 5))
        json.number("risk_usd", result.double(0, 6))
        json.int("updated_at_ms", updatedAtMs)
        json.string("exchange", result.string(0, 7))
        let response = SavePositionResponse(positionID: result.string(0, 0) ?? "", opened: opened, updatedAtMs: updatedAtMs)
        return JobOutcome(
            reply: response.encodedPayload(),
            cacheMutations: [.hashSet(key: keys.positions(model: r.modelID), field: r.symbol,
                                      value: json.finish(), ttlSeconds: ttl)])
    }

    func complete(_ result: Result<[UInt8], ServiceError>) { reply.complete(result) }

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
        var rng = SystemRandomNumberGenerator()
        let suffix = String(rng.next() as UInt32, radix: 16)
        return "\(r.modelID)|\(r.symbol)|\(r.entryTimeMs ?? 0)|\(suffix)"
    }
}

/// Shortest text that reads back as the same double.
@inline(__always)
func pgText(_ d: Double) -> String { "\(d)" }
