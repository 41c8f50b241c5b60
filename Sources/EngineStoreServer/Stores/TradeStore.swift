import EngineStoreWire
import LibPQ

/// One closed trade (SQL fragment `trade_columns`) and its cache document.
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

    init(_ r: PGRow) {
        self.init(id: r.string("id") ?? "", modelID: r.string("model_id") ?? "", symbol: r.string("symbol") ?? "",
                  side: r.string("side") ?? "long", exchange: r.string("exchange_provider") ?? "",
                  quantity: r.double("quantity") ?? 0, entryPrice: r.double("entry_price") ?? 0,
                  exitPrice: r.double("exit_price") ?? 0, realizedPnl: r.double("realized_net_pnl") ?? 0,
                  confidence: r.double("confidence"), leverage: r.double("leverage"), closedAtMs: r.int("exit_ts_ms") ?? 0,
                  entryTimeMs: r.int("entry_ts_ms") ?? 0)
    }

    /// nof0's `position_size`: the closed quantity in units (not the notional).
    var positionSize: Double { quantity }

    /// The trade document (proto-spec §10.12), the only encoder of it.
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

    /// The document read back; nil when it is not a trade document.
    static func snapshot(document text: String) -> TradeSnapshot? {
        guard let o = jsonObject(text),
              let symbol = o.string("symbol") else { return nil }
        return TradeSnapshot(
            modelID: o.string("model_id") ?? "", symbol: symbol, side: o.string("side") == "short" ? .short : .long,
            quantity: o.double("quantity") ?? 0, entryPrice: o.double("entry_price") ?? 0, exitPrice: o.double("exit_price") ?? 0,
            realizedPnl: o.double("realized_pnl") ?? 0, confidence: o.double("confidence"), closedAtMs: o.int64("closed_at_ms") ?? 0,
            exchange: o.string("exchange") ?? "", entryTimeMs: o.int64("entry_time_ms") ?? 0, leverage: o.double("leverage"),
            positionSize: o.double("position_size") ?? 0)
    }

    var snapshot: TradeSnapshot {
        TradeSnapshot(modelID: modelID, symbol: symbol, side: side == "short" ? .short : .long, quantity: quantity,
                      entryPrice: entryPrice, exitPrice: exitPrice, realizedPnl: realizedPnl, confidence: confidence,
                      closedAtMs: closedAtMs, exchange: exchange, entryTimeMs: entryTimeMs, leverage: leverage,
                      positionSize: positionSize)
    }

    /// The `position_closed` stream entry: event_id (the trades row id, for consumer dedupe), type,
    /// model_id, symbol, ts_ms (exit time), data (trade JSON).
    /// `document`: this trade's `json`, when the caller has it already (a close merges it too).
    func closeEvent(_ keys: CacheKeys, streamMaxLength: Int, document: String? = nil) -> CacheMutation {
        .streamAdd(key: keys.tradeStream, maxLength: streamMaxLength, fields: [
            ("event_id", id), ("type", "position_closed"), ("model_id", modelID), ("symbol", symbol),
            ("ts_ms", String(closedAtMs)), ("data", document ?? json),
        ])
    }
}

/// The statements on `trades` and `engine_store_trade_events` (SQL/trades.sql), and their documents.
enum TradeStore {
    /// The recent-trades list holds this many.
    static let recentLength = 100

    /// A close's trades row: the trade document's fields plus what only the table keeps.
    struct Insert: PGStatement {
        static let sql = SQLText.tradeInsert
        let trade: TradeRow
        let tradeType: String
        let exchangeTradeID: String?
        let entryOID, exitTID, exitOID: Int64?
        let exitCrossed: Bool
        let exitLiquidationJSON, exitPlanJSON: String?
        let gross, entryCommission, exitCommission, totalCommission: Double

        var bindings: [String?] {
            let t = trade
            return [
                t.id, t.modelID, t.exchange, t.symbol, t.side, tradeType, exchangeTradeID, pgText(t.quantity),
                t.leverage.map(pgText), t.confidence.map(pgText),
                pgText(t.entryPrice), String(t.entryTimeMs), rfc3339(t.entryTimeMs), pgText(t.quantity), entryOID.map(String.init),
                pgText(entryCommission),
                pgText(t.exitPrice), String(t.closedAtMs), rfc3339(t.closedAtMs), pgText(t.quantity), exitTID.map(String.init),
                exitOID.map(String.init), pgText(exitCrossed), exitLiquidationJSON,
                pgText(exitCommission), pgText(gross), exitPlanJSON,
                pgText(gross), pgText(t.realizedPnl), pgText(totalCommission),
            ]
        }
    }

    struct Recent: PGStatement {
        static let sql = SQLText.tradesRecentOfModel
        let model: String
        var limit = TradeStore.recentLength
        var bindings: [String?] { [model, String(limit)] }
        static func decode(_ r: PGRow) -> TradeRow { TradeRow(r) }
    }

    struct ByID: PGStatement {
        static let sql = SQLText.tradeById
        let id: String
        var bindings: [String?] { [id] }
        static func decode(_ r: PGRow) -> TradeRow { TradeRow(r) }
    }

    /// Which of `ids` are trades rows.
    struct Existing: PGStatement {
        static let sql = SQLText.tradesExisting
        let ids: [String]
        var bindings: [String?] { [pgArray(ids)] }
        static func decode(_ r: PGRow) -> String { r.string("id") ?? "" }
    }

    /// Returns a row when the event is new.
    struct InsertEvent: PGStatement {
        static let sql = SQLText.tradeEventInsert
        let event: PublishTradeEventRequest
        var bindings: [String?] {
            let r = event
            return [r.tradeID, r.modelID, r.symbol, r.kind, r.side?.description, r.price.map(pgText), r.size.map(pgText),
                    r.fee.map(pgText), String(r.timestampMs), r.payloadJSON]
        }
    }

    struct EventByID: PGStatement {
        static let sql = SQLText.tradeEventById
        let id: String
        var bindings: [String?] { [id] }
        static func decode(_ r: PGRow) -> PublishTradeEventRequest {
            PublishTradeEventRequest(
                tradeID: r.string("trade_id") ?? "", modelID: r.string("model_id") ?? "", symbol: r.string("symbol") ?? "",
                kind: r.string("kind") ?? "", side: r.string("side").map { $0 == "short" ? .short : .long },
                price: r.double("price"), size: r.double("size"), fee: r.double("fee"), timestampMs: r.int("ts_ms") ?? 0,
                payloadJSON: r.string("payload"))
        }
    }

    // MARK: cache documents

    /// The newest trades merged into the list (built if missing); `drop` removes entries of trades
    /// that Postgres does not have (repair).
    static func merge(_ rows: [TradeRow], model: String, keys: CacheKeys, mode: CacheMutation.ListMode, ttl: Int,
                      drop: [String] = []) -> CacheMutation {
        merge(documents: rows.map(\.json), model: model, keys: keys, mode: mode, ttl: ttl, drop: drop)
    }

    /// `merge` of trades' documents (their `json`).
    static func merge(documents: [String], model: String, keys: CacheKeys, mode: CacheMutation.ListMode, ttl: Int,
                      drop: [String] = []) -> CacheMutation {
        .tradesMerge(key: keys.recentTrades(model: model), items: documents, maxLength: recentLength, mode: mode,
                     ttlSeconds: ttl, drop: drop)
    }

    /// A new trade event: the ingest guard and the `trade_event` stream entry (event_id = trade id,
    /// for consumer dedupe).
    static func eventMutations(_ r: PublishTradeEventRequest, keys: CacheKeys, streamMaxLength: Int) -> [CacheMutation] {
        var data = JSONObjectWriter()
        data.string("trade_id", r.tradeID)
        data.string("model_id", r.modelID)
        data.string("symbol", r.symbol)
        data.string("kind", r.kind)
        data.string("side", r.side?.description)
        data.number("price", r.price)
        data.number("size", r.size)
        data.number("fee", r.fee)
        data.int("ts_ms", r.timestampMs)
        data.raw("payload", r.payloadJSON)
        return [
            .set(key: keys.ingestGuard(tradeID: r.tradeID), value: "1", ttlSeconds: 86_400),
            .streamAdd(key: keys.tradeStream, maxLength: streamMaxLength, fields: [
                ("event_id", r.tradeID), ("type", "trade_event"), ("kind", r.kind), ("model_id", r.modelID),
                ("symbol", r.symbol), ("ts_ms", String(r.timestampMs)), ("data", data.finish()),
            ]),
        ]
    }
}
