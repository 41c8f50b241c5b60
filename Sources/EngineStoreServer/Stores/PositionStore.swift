import EngineStoreWire
import LibPQ

/// One position row (the columns of SQL fragment `position_columns`) and its cache document.
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

    init(_ r: PGRow) {
        id = r.string("id") ?? ""
        symbol = r.string("symbol") ?? ""
        side = r.string("side") ?? "long"
        quantity = r.double("quantity") ?? 0
        entryPrice = r.double("entry_price") ?? 0
        leverage = r.double("leverage")
        confidence = r.double("confidence")
        riskUSD = r.double("risk_usd")
        exchange = r.string("exchange_provider") ?? ""
        updatedAtMs = r.int("updated_ms") ?? 0
        version = r.int("cache_version") ?? 0
    }

    /// The position document (proto-spec §10.12): symbol, side, quantity, entry_price, leverage, confidence,
    /// risk_usd, updated_at_ms, exchange. The only encoder of it: the direct path, the relay, Hydrate,
    /// the checker and read refills all call this.
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

    /// The document read back (the read path's decoder); nil when it is not a position document.
    static func snapshot(document text: String) -> PositionSnapshot? {
        guard let o = jsonObject(text),
              let symbol = o.string("symbol"), let side = o.string("side"),
              let quantity = o.double("quantity"), let entry = o.double("entry_price") else { return nil }
        return PositionSnapshot(
            symbol: symbol, side: side == "short" ? .short : .long, quantity: quantity, entryPrice: entry,
            leverage: o.double("leverage"), confidence: o.double("confidence"), riskUSD: o.double("risk_usd"),
            updatedAtMs: o.int64("updated_at_ms") ?? 0, exchange: o.string("exchange") ?? "")
    }

    var snapshot: PositionSnapshot {
        PositionSnapshot(symbol: symbol, side: side == "short" ? .short : .long, quantity: quantity, entryPrice: entryPrice,
                         leverage: leverage, confidence: confidence, riskUSD: riskUSD, updatedAtMs: updatedAtMs, exchange: exchange)
    }

    /// This row as the positions hash field it caches.
    func cacheMutation(_ keys: CacheKeys, model: String, ttl: Int) -> CacheMutation {
        let key = keys.positions(model: model)
        return .positionSet(key: key, versionKey: keys.version(of: key), field: symbol, value: json,
                            version: CacheVersion.of(version), ttlSeconds: ttl)
    }
}

/// The statements on `positions` (SQL/positions.sql).
enum PositionStore {
    /// What `position_save` returns: the row, whether it was opened, and its outbox row.
    struct Saved {
        var row: PositionRow
        var opened: Bool
        var outboxID: Int64?
        init(_ r: PGRow) {
            row = PositionRow(r)
            opened = r.bool("opened") ?? false
            outboxID = r.int("outbox_id")
        }
    }

    /// SavePosition's one statement: updates the open row, else opens one with `newID` (nil: update
    /// only). With `record`, it also records the reply under that idempotency key (pipelined path).
    struct Save: PGStatement {
        static let sql = SQLText.positionSave
        let request: SavePositionRequest
        let record: (key: String, digest: String)?
        let newID: String

        var bindings: [String?] {
            PositionStore.fields(request) + [record?.key, record?.digest, record.map { _ in String(Method.savePosition.rawValue) },
                                             newID]
        }
        static func decode(_ r: PGRow) -> Saved { Saved(r) }
    }

    /// `Save` without opening (`position_save_existing`).
    struct SaveExisting: PGStatement {
        static let sql = SQLText.positionSaveExisting
        let request: SavePositionRequest
        let record: (key: String, digest: String)?

        var bindings: [String?] {
            PositionStore.fields(request) + [record?.key, record?.digest, record.map { _ in String(Method.savePosition.rawValue) }]
        }
        static func decode(_ r: PGRow) -> Saved { Saved(r) }
    }

    /// `$1`…`$22` of both save statements (NULL: the field keeps its value).
    static func fields(_ r: SavePositionRequest) -> [String?] {
        [r.modelID, r.symbol, r.exchangeProvider, r.side?.description,
         r.quantity.map(pgText), r.entryPrice.map(pgText), r.entryTimeMs.map(String.init),
         r.leverage.map(pgText), r.confidence.map(pgText), r.riskUSD.map(pgText), r.margin.map(pgText),
         r.entryOID.map(String.init), r.tpOID.map(String.init), r.slOID.map(String.init),
         r.waitForFill.map(pgText), r.exitPlanJSON, r.indexJSON,
         r.currentPrice.map(pgText), r.unrealizedPnl.map(pgText), r.liquidationPrice.map(pgText),
         r.commission.map(pgText), r.slippage.map(pgText)]
    }

    struct OpenOfModel: PGStatement {
        static let sql = SQLText.positionsOpenOfModel
        let model: String
        var bindings: [String?] { [model] }
        static func decode(_ r: PGRow) -> PositionRow { PositionRow(r) }
    }

    /// The newest row of each symbol, open or closed.
    struct Slots: PGStatement {
        static let sql = SQLText.positionSlots
        let model: String
        var bindings: [String?] { [model] }
        static func decode(_ r: PGRow) -> (row: PositionRow, open: Bool) { (PositionRow(r), r.bool("is_open") ?? false) }
    }

    /// The open row, locked, with what a close needs.
    struct LockOpen: PGStatement {
        struct Row {
            var id, side, exchange: String
            var quantity, entryPrice, commission: Double
            var entryTimeMs: Int64
            var leverage, confidence: Double?
            var entryOID: Int64?
            var exitPlan: String?
        }
        static let sql = SQLText.positionLockOpen
        let model: String, symbol: String
        var bindings: [String?] { [model, symbol] }
        static func decode(_ r: PGRow) -> Row {
            Row(id: r.string("id") ?? "", side: r.string("side") ?? "long", exchange: r.string("exchange_provider") ?? "",
                quantity: r.double("quantity") ?? 0, entryPrice: r.double("entry_price") ?? 0,
                commission: r.double("commission") ?? 0, entryTimeMs: r.int("entry_time_ms") ?? 0,
                leverage: r.double("leverage"), confidence: r.double("confidence"), entryOID: r.int("entry_oid"),
                exitPlan: r.string("exit_plan"))
        }
    }

    /// Closes the row; returns its new cache version.
    struct CloseFull: PGStatement {
        static let sql = SQLText.positionCloseFull
        let id: String, exitPrice: Double, net: Double
        var bindings: [String?] { [id, pgText(exitPrice), pgText(net)] }
        static func decode(_ r: PGRow) -> Int64 { r.int("cache_version") ?? 0 }
    }

    struct ClosePartial: PGStatement {
        static let sql = SQLText.positionClosePartial
        let id: String, closed: Double, commissionShare: Double, net: Double, exitPrice: Double
        var bindings: [String?] { [id, pgText(closed), pgText(commissionShare), pgText(net), pgText(exitPrice)] }
        static func decode(_ r: PGRow) -> PositionRow { PositionRow(r) }
    }

    /// A snapshot's mark, phase one: the open row's lock; no row when the position is not open.
    struct LockForMark: PGStatement {
        static let sql = SQLText.positionLockForMark
        let model: String
        let symbol: String
        var bindings: [String?] { [model, symbol] }
    }

    /// A snapshot's mark; no row when the position is not open.
    struct Mark: PGStatement {
        static let sql = SQLText.positionMark
        let model: String
        let mark: PositionMark
        var bindings: [String?] {
            [model, mark.symbol, pgText(mark.currentPrice), mark.unrealizedPnl.map(pgText), mark.liquidationPrice.map(pgText)]
        }
        static func decode(_ r: PGRow) -> PositionRow { PositionRow(r) }
    }

    // MARK: cache documents

    /// A read's refill: the open rows, built only if the hash is still missing, each field under its
    /// version, so a refill read before a newer write can never replace what that write put there.
    static func refill(_ rows: [PositionRow], model: String, keys: CacheKeys, ttl: Int) -> CacheMutation {
        let key = keys.positions(model: model)
        return .positionsSync(key: key, versionKey: keys.version(of: key),
                              open: rows.map { ($0.symbol, CacheVersion.of($0.version), $0.json) }, closed: [], mode: .build,
                              ttlSeconds: ttl)
    }

    /// A closed position's field removed, under the closing row's version.
    static func closed(model: String, symbol: String, version: Int64, keys: CacheKeys, ttl: Int) -> CacheMutation {
        let key = keys.positions(model: model)
        return .positionDelete(key: key, versionKey: keys.version(of: key), field: symbol, version: CacheVersion.of(version),
                               ttlSeconds: ttl)
    }

    /// The positions hash as Postgres has it, with versions and tombstones (see CacheScripts.positionsSync).
    static func sync(_ s: PostgresSession, model: String, keys: CacheKeys, mode: CacheMutation.SyncMode,
                     ttl: Int) throws -> CacheMutation {
        var open: [(field: String, version: String, value: String)] = []
        var closed: [(field: String, version: String)] = []
        for (row, isOpen) in try s.rows(Slots(model: model)) {
            let version = CacheVersion.of(row.version)
            if isOpen { open.append((row.symbol, version, row.json)) } else { closed.append((row.symbol, version)) }
        }
        let key = keys.positions(model: model)
        return .positionsSync(key: key, versionKey: keys.version(of: key), open: open, closed: closed, mode: mode, ttlSeconds: ttl)
    }
}
