import EngineStoreWire
import Glibc
import LibPQ

private let lockOpen = Statement(name: "position_lock_open", sql: """
    SELECT id, side, quantity, entry_price, entry_time_ms, leverage, confidence, commission, exchange_provider,
           entry_oid, exit_plan::text, risk_usd
    FROM positions WHERE model_id = $1 AND symbol = $2 AND status = 'open' FOR UPDATE
    """)

private let closeFully = Statement(name: "position_close_full", sql: """
    UPDATE positions SET status = 'closed', current_price = $2, unrealized_pnl = 0,
        closed_pnl = COALESCE(closed_pnl, 0) + $3, updated_at = now(), cache_version = nextval('engine_store_cache_version')
    WHERE id = $1
    RETURNING cache_version
    """)

private let closePartly = Statement(name: "position_close_partial", sql: """
    UPDATE positions SET quantity = quantity - $2, commission = commission - $3,
        closed_pnl = COALESCE(closed_pnl, 0) + $4, current_price = $5, updated_at = now(),
        cache_version = nextval('engine_store_cache_version')
    WHERE id = $1
    RETURNING \(positionColumns)
    """)

private let insertTrade = Statement(name: "trade_insert", sql: """
    INSERT INTO trades (
        id, model_id, exchange_provider, symbol, side, trade_type, trade_id, quantity, leverage, confidence,
        entry_price, entry_ts_ms, entry_human_time, entry_sz, entry_oid, entry_commission_dollars,
        exit_price, exit_ts_ms, exit_human_time, exit_sz, exit_tid, exit_oid, exit_crossed, exit_liquidation,
        exit_commission_dollars, exit_closed_pnl, exit_plan, realized_gross_pnl, realized_net_pnl,
        total_commission_dollars)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
            $21, $22, $23, $24::jsonb, $25, $26, $27::jsonb, $28, $29, $30)
    """)

/// Trade JSON columns (the trade document, proto-spec §10.12) of a model's newest closed trades: newest exit first,
/// ties by id in byte order (the order the cache's merge script keeps; see CacheScripts.tradesMerge).
let recentTradesOfModel = Statement(name: "trades_recent_of_model", sql: """
    SELECT model_id, symbol, side, quantity, entry_price, exit_price, realized_net_pnl, confidence,
           exit_ts_ms, exchange_provider, entry_ts_ms, leverage, id
    FROM trades WHERE model_id = $1 AND exit_ts_ms IS NOT NULL
    ORDER BY exit_ts_ms DESC, id COLLATE "C" DESC LIMIT $2
    """)

/// One trade row in the shape of `recentTradesOfModel`.
struct TradeRow {
    /// The trades row id; in the JSON so that the cached list can be merged and deduplicated.
    var id: String
    var modelID, symbol, side, exchange: String
    var quantity, entryPrice, exitPrice, realizedPnl: Double
    var confidence, leverage: Double?
    var closedAtMs, entryTimeMs: Int64

    init(id: String, modelID: String, symbol: String, side: String, exchange: String, quantity: Double, entryPrice: Double,
         exitPrice: Double, realizedPnl: Double, confidence: Double?, leverage: Double?, closedAtMs: Int64, entryTimeMs: Int64) {
        self.id = id
        self.modelID = modelID
        self.symbol = symbol
        self.side = side
        self.exchange = exchange
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.exitPrice = exitPrice
        self.realizedPnl = realizedPnl
        self.confidence = confidence
        self.leverage = leverage
        self.closedAtMs = closedAtMs
        self.entryTimeMs = entryTimeMs
    }

    init(_ r: PGResult, _ i: Int) {
        self.init(id: r.string(i, 12) ?? "", modelID: r.string(i, 0) ?? "", symbol: r.string(i, 1) ?? "", side: r.string(i, 2) ?? "long",
                  exchange: r.string(i, 9) ?? "", quantity: r.double(i, 3) ?? 0, entryPrice: r.double(i, 4) ?? 0,
                  exitPrice: r.double(i, 5) ?? 0, realizedPnl: r.double(i, 6) ?? 0, confidence: r.double(i, 7),
                  leverage: r.double(i, 11), closedAtMs: r.int(i, 8) ?? 0, entryTimeMs: r.int(i, 10) ?? 0)
    }

    /// nof0's `position_size`: the closed quantity in units (not the notional).
    var positionSize: Double { quantity }

    var json: String {
        var j = JSONObjectWriter()
        j.string("model_id", modelID)
        j.string("symbol", symbol)
        j.string("side", side)
        j.number("quantity", quantity)
        j.number("entry_price", entryPrice)
        j.number("exit_price", exitPrice)
        j.number("realized_pnl", realizedPnl)
        j.number("confidence", confidence)
        j.int("closed_at_ms", closedAtMs)
        j.string("exchange", exchange)
        j.int("entry_time_ms", entryTimeMs)
        j.number("leverage", leverage)
        j.number("position_size", positionSize)
        j.string("id", id)
        return j.finish()
    }

    var snapshot: TradeSnapshot {
        TradeSnapshot(modelID: modelID, symbol: symbol, side: side == "short" ? .short : .long, quantity: quantity,
                      entryPrice: entryPrice, exitPrice: exitPrice, realizedPnl: realizedPnl, confidence: confidence,
                      closedAtMs: closedAtMs, exchange: exchange, entryTimeMs: entryTimeMs, leverage: leverage,
                      positionSize: positionSize)
    }
}

/// Realized PnL of closing `size` of a position.
struct CloseMath {
    let gross: Double
    let entryCommissionShare: Double
    let exitCommission: Double
    var totalCommission: Double { entryCommissionShare + exitCommission }
    /// Net = gross − entry commission share for the closed size − exit commission.
    var net: Double { gross - totalCommission }

    init(side: String, entryPrice: Double, exitPrice: Double, size: Double, openSize: Double,
         entryCommission: Double, exitCommission: Double) {
        let direction: Double = side == "short" ? -1 : 1
        gross = (exitPrice - entryPrice) * size * direction
        entryCommissionShare = openSize > 0 ? entryCommission * min(1, size / openSize) : 0
        self.exitCommission = exitCommission
    }

    /// Every value a close stores or publishes must be finite (Inf and NaN are never stored): the
    /// position size (closed size × entry price), the exit notional, gross and net PnL and the fees.
    /// Each input is finite (validated, or read from a row validated when written), but products and
    /// sums can still overflow, e.g. a close at 1e300 of 1e10 opened at 1. The error names the field
    /// that the caller can change: `exit_size` (or, for a whole close, the stored size), `exit_price`
    /// for the PnL, `exit_commission` for the fees.
    static func requireFinite(_ math: CloseMath, closedSize: Double, entryPrice: Double, exitPrice: Double) throws(ServiceError) {
        guard (closedSize * entryPrice).isFinite else {
            throw .invalid("exit_size", "position size \(closedSize) × entry price \(entryPrice) is not finite")
        }
        guard (closedSize * exitPrice).isFinite, math.gross.isFinite else {
            throw .invalid("exit_price", "realized PnL at exit price \(exitPrice) for size \(closedSize) is not finite")
        }
        guard math.entryCommissionShare.isFinite, math.totalCommission.isFinite else {
            throw .invalid("exit_commission", "total commission is not finite")
        }
        guard math.net.isFinite else {
            throw .invalid("exit_commission", "net PnL (gross \(math.gross) − commission \(math.totalCommission)) is not finite")
        }
    }
}

/// ClosePosition: in one transaction, the open row is closed (or reduced) and a trades row inserted.
/// After the commit: HDEL (full) or HSET (partial) on the positions hash, the trade pushed onto the
/// recent-trades list (trimmed to 100), and a `position_closed` event on the trade stream.
struct ClosePositionBody: WriteBody {
    let request: ClosePositionRequest
    let keys: CacheKeys
    let ttl: CacheTTL
    let streamMaxLength: Int

    var lockKeys: [String] { [LockOrder.position(request.modelID, request.symbol)] }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        let open = try session.run(lockOpen, [r.modelID, r.symbol])
        guard open.rowCount == 1 else {
            throw ServiceError(.notFound, "no open position for \(r.modelID) \(r.symbol)")
        }
        let positionID = open.string(0, 0) ?? ""
        let side = open.string(0, 1) ?? "long"
        let openSize = open.double(0, 2) ?? 0
        let entryPrice = open.double(0, 3) ?? 0
        let entryTimeMs = open.int(0, 4) ?? 0
        let leverage = open.double(0, 5)
        let confidence = open.double(0, 6)
        let entryCommission = open.double(0, 7) ?? 0
        let exchange = open.string(0, 8) ?? ""
        let entryOID = open.int(0, 9)
        let exitPlan = open.string(0, 10)

        let size = r.exitSize ?? openSize
        // A relative tolerance absorbs float noise from earlier partial closes.
        let epsilon = max(openSize, 1) * 1e-9
        guard size <= openSize + epsilon else {
            throw ServiceError.invalid("exit_size", "\(size) is more than the open size \(openSize)")
        }
        let full = size >= openSize - epsilon
        let closed = full ? openSize : size
        let math = CloseMath(side: side, entryPrice: entryPrice, exitPrice: r.exitPrice, size: closed, openSize: openSize,
                             entryCommission: entryCommission, exitCommission: r.exitCommission ?? 0)
        // Before anything is written: a non-finite result rolls back this request alone.
        try CloseMath.requireFinite(math, closedSize: closed, entryPrice: entryPrice, exitPrice: r.exitPrice)

        var mutations: [CacheMutation] = []
        let positionsKey = keys.positions(model: r.modelID)
        var remaining = 0.0
        if full {
            let closedRow = try session.run(closeFully, [positionID, pgText(r.exitPrice), pgText(math.net)])
            mutations.append(.positionDelete(key: positionsKey, versionKey: keys.version(of: positionsKey), field: r.symbol,
                                             version: CacheVersion.of(closedRow.int(0, 0) ?? 0), ttlSeconds: ttl.positions))
        } else {
            let updated = try session.run(closePartly, [positionID, pgText(closed), pgText(math.entryCommissionShare),
                                                        pgText(math.net), pgText(r.exitPrice)])
            let row = PositionRow(updated, 0)
            remaining = row.quantity
            mutations.append(row.cacheMutation(keys, model: r.modelID, ttl: ttl.positions))
        }

        let tradeRowID = "\(r.modelID)|\(r.symbol)|\(r.exitTimeMs)|\(randomSuffix())"
        let tradeType = r.tradeType ?? (side == "short" ? "close_short" : "close_long")
        try session.run(insertTrade, [
            tradeRowID, r.modelID, exchange, r.symbol, side, tradeType, r.tradeID, pgText(closed),
            leverage.map(pgText), confidence.map(pgText),
            pgText(entryPrice), String(entryTimeMs), rfc3339(entryTimeMs), pgText(closed), entryOID.map(String.init),
            pgText(math.entryCommissionShare),
            pgText(r.exitPrice), String(r.exitTimeMs), rfc3339(r.exitTimeMs), pgText(closed), r.exitTID.map(String.init),
            r.exitOID.map(String.init), (r.exitCrossed ?? false) ? "true" : "false", r.exitLiquidationJSON,
            pgText(math.exitCommission), pgText(math.gross), exitPlan,
            pgText(math.gross), pgText(math.net), pgText(math.totalCommission),
        ])

        let trade = TradeRow(id: tradeRowID, modelID: r.modelID, symbol: r.symbol, side: side, exchange: exchange, quantity: closed,
                             entryPrice: entryPrice, exitPrice: r.exitPrice, realizedPnl: math.net, confidence: confidence,
                             leverage: leverage, closedAtMs: r.exitTimeMs, entryTimeMs: entryTimeMs)
        // Merged where it belongs by exit time; a missing list is left to the relay to build.
        mutations.append(.tradesMerge(key: keys.recentTrades(model: r.modelID), items: [trade.json], maxLength: 100,
                                      mode: .existing, ttlSeconds: ttl.medium))
        let response = ClosePositionResponse(
            tradeRowID: tradeRowID, positionID: positionID, fullyClosed: full, closedSize: closed, remainingSize: remaining,
            realizedGrossPnl: math.gross, realizedNetPnl: math.net, totalCommission: math.totalCommission)
        let outbox = try Outbox.record(session, [.position(model: r.modelID, symbol: r.symbol), .recentTrades(model: r.modelID),
                                                 .closeEvent(tradeRowID: tradeRowID)])
        // Ids in the order of the intents: the two keys go with `mutations`, the event on its own.
        var outcome = JobOutcome(reply: response.encodedPayload(), cacheMutations: mutations, outboxIDs: Array(outbox.prefix(2)))
        outcome.independentCacheWork = [(
            [.streamAdd(key: keys.tradeStream, maxLength: streamMaxLength, fields: Self.streamFields(tradeRowID, trade))],
            Array(outbox.dropFirst(2)))]
        return outcome
    }
}

extension ClosePositionBody {
    /// The `position_closed` stream entry: event_id (the trades row id, for consumer dedupe), type,
    /// model_id, symbol, ts_ms (exit time), data (trade JSON).
    static func streamFields(_ tradeRowID: String, _ trade: TradeRow) -> [(String, String)] {
        [("event_id", tradeRowID), ("type", "position_closed"), ("model_id", trade.modelID), ("symbol", trade.symbol),
         ("ts_ms", String(trade.closedAtMs)), ("data", trade.json)]
    }
}

/// RFC 3339 UTC with milliseconds, e.g. 2025-11-27T00:00:00.000Z.
func rfc3339(_ ms: Int64) -> String {
    var t = time_t(ms / 1000)
    var parts = tm()
    gmtime_r(&t, &parts)
    func pad(_ v: Int32, _ n: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, n - s.count)) + s
    }
    let millis = Int32(((ms % 1000) + 1000) % 1000)
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
}
