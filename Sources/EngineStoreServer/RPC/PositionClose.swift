import EngineStoreWire
import LibPQ

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
struct ClosePositionBody: TwoPhaseWrite {
    let request: ClosePositionRequest
    let keys: CacheKeys
    let ttl: CacheTTL
    let streamMaxLength: Int

    var lockKeys: [String] { [LockOrder.position(request.modelID, request.symbol)] }

    /// Locks the open row. The position update, the trades row and the outbox rows need nothing but
    /// that row, and the reply is known before they run: they are the plan, sent in one more round trip
    /// (with the idempotency record; in a two-phase batch, with every other close's and the COMMIT).
    var reads: [PGCall] { [PositionStore.LockOpen(model: request.modelID, symbol: request.symbol).call] }

    func plan(_ reads: [PGResult]) throws -> WritePlan {
        let r = request
        guard reads[0].rowCount > 0 else {
            throw ServiceError(.notFound, "no open position for \(r.modelID) \(r.symbol)")
        }
        let open = PositionStore.LockOpen.decode(PGRow(reads[0], 0))
        let (positionID, side, openSize, entryPrice) = (open.id, open.side, open.quantity, open.entryPrice)
        let (entryTimeMs, leverage, confidence, exchange) = (open.entryTimeMs, open.leverage, open.confidence, open.exchange)

        let size = r.exitSize ?? openSize
        // A relative tolerance absorbs float noise from earlier partial closes.
        let epsilon = max(openSize, 1) * 1e-9
        guard size <= openSize + epsilon else {
            throw ServiceError.invalid("exit_size", "\(size) is more than the open size \(openSize)")
        }
        let full = size >= openSize - epsilon
        let closed = full ? openSize : size
        let math = CloseMath(side: side, entryPrice: entryPrice, exitPrice: r.exitPrice, size: closed, openSize: openSize,
                             entryCommission: open.commission, exitCommission: r.exitCommission ?? 0)
        // Before anything is written: a non-finite result rolls back this request alone.
        try CloseMath.requireFinite(math, closedSize: closed, entryPrice: entryPrice, exitPrice: r.exitPrice)

        let tradeRowID = "\(r.modelID)|\(r.symbol)|\(r.exitTimeMs)|\(randomSuffix())"
        let tradeType = r.tradeType ?? (side == "short" ? "close_short" : "close_long")
        let trade = TradeRow(id: tradeRowID, modelID: r.modelID, symbol: r.symbol, side: side, exchange: exchange, quantity: closed,
                             entryPrice: entryPrice, exitPrice: r.exitPrice, realizedPnl: math.net, confidence: confidence,
                             leverage: leverage, closedAtMs: r.exitTimeMs, entryTimeMs: entryTimeMs)
        // What position_close_partial computes (`quantity - $2`, the same doubles): the reply is known now.
        let remaining = full ? 0 : openSize - closed
        let response = ClosePositionResponse(
            tradeRowID: tradeRowID, positionID: positionID, fullyClosed: full, closedSize: closed, remainingSize: remaining,
            realizedGrossPnl: math.gross, realizedNetPnl: math.net, totalCommission: math.totalCommission).encodedPayload()
        let update = full
            ? PositionStore.CloseFull(id: positionID, exitPrice: r.exitPrice, net: math.net).call
            : PositionStore.ClosePartial(id: positionID, closed: closed, commissionShare: math.entryCommissionShare, net: math.net,
                                         exitPrice: r.exitPrice).call
        let insert = TradeStore.Insert(
            trade: trade, tradeType: tradeType, exchangeTradeID: r.tradeID, entryOID: open.entryOID, exitTID: r.exitTID,
            exitOID: r.exitOID, exitCrossed: r.exitCrossed ?? false, exitLiquidationJSON: r.exitLiquidationJSON,
            exitPlanJSON: open.exitPlan, gross: math.gross, entryCommission: math.entryCommissionShare,
            exitCommission: math.exitCommission, totalCommission: math.totalCommission).call
        let intents: [OutboxIntent] = [.position(model: r.modelID, symbol: r.symbol), .recentTrades(model: r.modelID),
                                       .closeEvent(tradeRowID: tradeRowID)]
        let keys = self.keys, ttl = self.ttl, streamMaxLength = self.streamMaxLength
        return WritePlan(calls: [update, insert], intents: intents, reply: response) { results, outboxIDs in
            var mutations: [CacheMutation] = []
            if full {
                let version = results[0].rowCount > 0 ? PositionStore.CloseFull.decode(PGRow(results[0], 0)) : 0
                mutations.append(PositionStore.closed(model: r.modelID, symbol: r.symbol, version: version, keys: keys, ttl: ttl.positions))
            } else {
                guard results[0].rowCount > 0 else { throw ServiceError(.internalError, "open position vanished under its lock") }
                mutations.append(PositionStore.ClosePartial.decode(PGRow(results[0], 0)).cacheMutation(keys, model: r.modelID, ttl: ttl.positions))
            }
            // Merged where it belongs by exit time; a missing list is left to the relay to build. The
            // document is built once, for the list and the stream entry.
            let document = trade.json
            mutations.append(TradeStore.merge(documents: [document], model: r.modelID, keys: keys, mode: .existing, ttl: ttl.medium))
            // In the order of the intents: the two keys go with `mutations`, the event on its own.
            var outcome = JobOutcome(reply: response, cacheMutations: mutations, outboxIDs: Array(outboxIDs.prefix(2)))
            outcome.independentCacheWork = [(
                [trade.closeEvent(keys, streamMaxLength: streamMaxLength, document: document)],
                Array(outboxIDs.dropFirst(2)))]
            return outcome
        }
    }
}
