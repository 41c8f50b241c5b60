import EngineStoreClient
import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import TestHarness
import Testing

@Suite struct PositionLifecycleTests {
    /// A close's reply is built before its statements run (they go out in one round trip with the
    /// idempotency record): the remaining size it reports is the row's, to the last bit, and a replay
    /// returns the same bytes.
    @Test func aPartialCloseReportsTheRowsRemainingSizeExactly() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let pg = try s.postgres()
        _ = try await client.savePosition(openRequest(model: "exact", symbol: "BTC", quantity: 0.3))
        var remaining = 0.3
        for (i, size) in [0.1, 0.07, 1e-9 * 3, 0.033333333333333333].enumerated() {
            let request = ClosePositionRequest(idempotencyKey: "exact-\(i)", modelID: "exact", symbol: "BTC", exitPrice: 101.7,
                                               exitSize: size, exitTimeMs: 1_764_201_700_000 + Int64(i), exitCommission: 0.013)
            let reply = try await client.closePosition(request)
            remaining -= size
            let stored = try #require(try pg.exec("SELECT quantity::text FROM positions WHERE model_id = 'exact' AND status = 'open'")
                .string(0, 0).flatMap(Double.init))
            #expect(!reply.fullyClosed)
            #expect(reply.remainingSize.bitPattern == stored.bitPattern)
            #expect(stored.bitPattern == remaining.bitPattern)
            #expect(try await client.closePosition(request) == reply)
        }
        await client.close()
        await s.stop()
    }

    @Test func openFillProtectMarkPartialCloseClose() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let model = "lifecycle"
        // Open, waiting for the fill.
        var open = openRequest(model: model, symbol: "BTC", quantity: 2)
        open.waitForFill = true
        open.commission = 4  // entry commission in dollars
        let opened = try await client.savePosition(open)
        #expect(opened.opened)
        // Fill: actual entry price and size.
        _ = try await client.savePosition(SavePositionRequest(modelID: model, symbol: "BTC", quantity: 2, entryPrice: 100, waitForFill: false))
        // SL/TP order ids.
        _ = try await client.savePosition(SavePositionRequest(modelID: model, symbol: "BTC", tpOID: 11, slOID: 12))
        // Mark to market.
        _ = try await client.savePosition(SavePositionRequest(modelID: model, symbol: "BTC", currentPrice: 105, unrealizedPnl: 10, liquidationPrice: 60))
        let pg = try s.postgres()
        let row = try pg.execParams("SELECT quantity, entry_price, wait_for_fill, tp_oid, sl_oid, current_price, unrealized_pnl, liquidation_price, count(*) OVER () FROM positions WHERE model_id = $1", [model])
        #expect(row.double(0, 0) == 2)
        #expect(row.double(0, 1) == 100)
        #expect(row.bool(0, 2) == false)
        #expect(row.int(0, 3) == 11)
        #expect(row.int(0, 4) == 12)
        #expect(row.double(0, 5) == 105)
        #expect(row.double(0, 6) == 10)
        #expect(row.double(0, 7) == 60)
        #expect(row.int(0, 8) == 1)

        // Partial close: 0.5 at 110 with $1 exit fee. Gross 5, entry share 4 × 0.25 = 1, net 3.
        let partial = try await client.closePosition(ClosePositionRequest(modelID: model, symbol: "BTC", exitPrice: 110, exitSize: 0.5,
                                                                          exitTimeMs: 1_764_201_700_000, exitOID: 21, exitTID: 31, exitCommission: 1))
        #expect(!partial.fullyClosed)
        #expect(partial.remainingSize == 1.5)
        #expect(partial.realizedGrossPnl == 5)
        #expect(partial.realizedNetPnl == 3)
        #expect(partial.totalCommission == 2)
        let redis = try s.redis()
        let hashKey = s.namespace + "positions:\(model)"
        #expect(try await eventually {
            guard let json = try redis.command(["HGET", hashKey, "BTC"]).text else { return false }
            return json.contains("\"quantity\":1.5")
        })

        // Full close of the rest at 90 with $1 exit fee. Gross -15, entry share 3, net -19.
        let full = try await client.closePosition(ClosePositionRequest(modelID: model, symbol: "BTC", exitPrice: 90,
                                                                       exitTimeMs: 1_764_201_800_000, exitCommission: 1))
        #expect(full.fullyClosed)
        #expect(full.closedSize == 1.5)
        #expect(full.realizedGrossPnl == -15)
        #expect(abs(full.realizedNetPnl - -19) < 1e-9)

        let position = try pg.execParams("SELECT status, closed_pnl FROM positions WHERE model_id = $1", [model])
        #expect(position.rowCount == 1)
        #expect(position.string(0, 0) == "closed")
        #expect(abs((position.double(0, 1) ?? 0) - -16) < 1e-9)
        let trades = try pg.execParams("""
            SELECT quantity, exit_price, realized_gross_pnl, realized_net_pnl, total_commission_dollars, entry_commission_dollars,
                   exit_commission_dollars, side, exit_oid, exit_tid, exit_human_time, entry_human_time, trade_type
            FROM trades WHERE model_id = $1 ORDER BY exit_ts_ms
            """, [model])
        #expect(trades.rowCount == 2)
        #expect(trades.double(0, 0) == 0.5)
        #expect(trades.double(0, 3) == 3)
        #expect(trades.double(0, 4) == 2)
        #expect(trades.double(0, 5) == 1)
        #expect(trades.int(0, 8) == 21)
        #expect(trades.int(0, 9) == 31)
        #expect(trades.string(0, 10) == "2025-11-27T00:01:40.000Z")
        #expect(trades.string(0, 11) == "2025-11-27T00:00:00.000Z")
        #expect(trades.string(0, 12) == "close_long")
        #expect(trades.double(1, 2) == -15)

        // Cache: hash field gone, two trades on the list (newest first), two stream entries.
        #expect(try await eventually { try redis.command(["HEXISTS", hashKey, "BTC"]).integer == 0 })
        let listKey = s.namespace + "trades:recent:\(model)"
        #expect(try await eventually { try redis.command(["LLEN", listKey]).integer == 2 })
        let newest = try #require(try redis.command(["LINDEX", listKey, "0"]).text)
        #expect(newest.contains("\"exit_price\":90"))
        #expect(newest.contains("\"closed_at_ms\":1764201800000"))
        let stream = try redis.command(["XRANGE", s.namespace + "trades:stream", "-", "+"])
        let entries = try #require(stream.array)
        let closes = entries.filter { e in
            guard let raw = e.array?.last?.array else { return false }
            let fields = raw.compactMap { $0.text }
            return fields.contains("position_closed") && fields.contains(model)
        }
        #expect(closes.count == 2)

        // Reads: the list is a hit; GetOpenPositions shows nothing open.
        let recent = try await client.recentTrades(model: model, limit: 10)
        #expect(recent.trades.count == 2)
        #expect(recent.trades.first?.exitPrice == 90)
        #expect(try await client.openPositions(model: model).positions.isEmpty)
        await client.close()
        await s.stop()
    }

    @Test func shortPnLIsNegatedAndNetSubtractsFees() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var open = openRequest(model: "shorty", symbol: "ETH", quantity: 3)
        open.side = .short
        open.entryPrice = 2000
        open.commission = 6
        _ = try await client.savePosition(open)
        let closed = try await client.closePosition(ClosePositionRequest(modelID: "shorty", symbol: "ETH", exitPrice: 1900,
                                                                         exitTimeMs: 1_764_201_700_000, exitCommission: 2))
        #expect(closed.realizedGrossPnl == 300)
        #expect(closed.realizedNetPnl == 292)
        #expect(closed.totalCommission == 8)
        let t = try s.postgres().execParams("SELECT side, trade_type, realized_net_pnl FROM trades WHERE model_id = 'shorty'", [])
        #expect(t.string(0, 0) == "short")
        #expect(t.string(0, 1) == "close_short")
        #expect(t.double(0, 2) == 292)
        await client.close()
        await s.stop()
    }

    @Test func closingWhatIsNotOpenIsNotFoundAndWritesNothing() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let error = await #expect(throws: EngineStoreError.self) {
            try await client.closePosition(ClosePositionRequest(modelID: "nobody", symbol: "BTC", exitPrice: 1, exitTimeMs: 1_764_201_700_000))
        }
        #expect(error?.code == .notFound)
        _ = try await client.savePosition(openRequest(model: "m", symbol: "BTC", quantity: 1))
        let tooMuch = await #expect(throws: EngineStoreError.self) {
            try await client.closePosition(ClosePositionRequest(modelID: "m", symbol: "BTC", exitPrice: 1, exitSize: 2, exitTimeMs: 1_764_201_700_000))
        }
        #expect(tooMuch?.code == .invalidArgument)
        #expect(tooMuch?.field == "exit_size")
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM trades").int(0, 0) == 0)
        #expect(try pg.exec("SELECT quantity FROM positions").double(0, 0) == 1)
        await client.close()
        await s.stop()
    }

    @Test func reopenAfterCloseKeepsTheClosedRow() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let first = try await client.savePosition(openRequest(model: "re", symbol: "SOL"))
        _ = try await client.closePosition(ClosePositionRequest(modelID: "re", symbol: "SOL", exitPrice: 101, exitTimeMs: 1_764_201_700_000))
        let second = try await client.savePosition(openRequest(model: "re", symbol: "SOL", quantity: 4))
        #expect(second.opened)
        #expect(second.positionID != first.positionID)
        let rows = try s.postgres().execParams("SELECT id, status, quantity FROM positions WHERE model_id = 're' ORDER BY created_at", [])
        #expect(rows.rowCount == 2)
        #expect(rows.string(0, 0) == first.positionID)
        #expect(rows.string(0, 1) == "closed")
        #expect(rows.double(0, 2) == 1.5)
        #expect(rows.string(1, 1) == "open")
        #expect(try s.postgres().exec("SELECT count(*) FROM positions WHERE model_id = 're' AND status = 'open'").int(0, 0) == 1)
        await client.close()
        await s.stop()
    }

    @Test func fiftyConcurrentSymbolsOfOneModelLoseNoHashField() async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 4 }
        let client = s.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask { _ = try await client.savePosition(openRequest(model: "fifty", symbol: "C\(i)")) }
            }
            try await group.waitForAll()
        }
        let redis = try s.redis()
        #expect(try await eventually { try redis.command(["HLEN", s.namespace + "positions:fifty"]).integer == 50 })
        let read = try await client.openPositions(model: "fifty")
        #expect(read.positions.count == 50)
        await client.close()
        await s.stop()
    }
}

@Suite struct IdempotencyTests {
    @Test func sameOpenTwiceWithOneKeyIsOneRowAndOneAnswer() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let request = openRequest(model: "idem", symbol: "BTC", key: "key-1")
        let a = try await client.savePosition(request)
        let b = try await client.savePosition(request)
        #expect(a == b)
        #expect(try s.postgres().exec("SELECT count(*) FROM positions").int(0, 0) == 1)

        // The same key with another payload is a conflict, and changes nothing.
        var other = request
        other.quantity = 9
        let error = await #expect(throws: EngineStoreError.self) { try await client.savePosition(other) }
        #expect(error?.code == .conflict)
        #expect(try s.postgres().exec("SELECT quantity FROM positions").double(0, 0) == 1.5)
        await client.close()
        await s.stop()
    }

    @Test func replayedAnswersCarryTheReplayedFlag() async throws {
        let s = try await RunningServer.start()
        let c = try RawConnection(path: s.socketPath)
        try c.hello()
        let frame = Frame.encode(header: FrameHeader(kind: .request, method: 16, requestID: 2),
                                 message: openRequest(model: "flag", symbol: "BTC", key: "flag-key"))
        c.send(frame)
        let first = try #require(try c.readFrame())
        #expect(first.header.kind == .response)
        #expect(!first.header.flags.contains(.replayed))
        c.send(frame)
        let second = try #require(try c.readFrame())
        #expect(second.header.flags.contains(.replayed))
        #expect(second.payload == first.payload)
        await s.stop()
    }

    @Test func retryAfterServerRestartIsExactlyOnce() async throws {
        let db = try await newDatabase()
        let first = try await RunningServer.start(database: db)
        let client = first.client()
        let close = ClosePositionRequest(idempotencyKey: "close-once", modelID: "restart", symbol: "BTC", exitPrice: 120,
                                         exitSize: 0.5, exitTimeMs: 1_764_201_700_000)
        _ = try await client.savePosition(openRequest(model: "restart", symbol: "BTC", key: "open-once"))
        let answer = try await client.closePosition(close)
        await client.close()
        await first.stop()

        let second = try await RunningServer.start(database: db)
        let again = second.client()
        let replay = try await again.closePosition(close)
        #expect(replay == answer)
        _ = try await again.savePosition(openRequest(model: "restart", symbol: "BTC", key: "open-once"))
        let pg = try second.postgres()
        #expect(try pg.exec("SELECT count(*) FROM trades").int(0, 0) == 1)
        #expect(try pg.exec("SELECT count(*) FROM positions").int(0, 0) == 1)
        #expect(try pg.exec("SELECT quantity FROM positions").double(0, 0) == 1.0)
        await again.close()
        await second.stop()
    }
}

@Suite struct TradeEventTests {
    @Test func eventsAreStoredOncePerTradeIDAndStreamedOnce() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let event = PublishTradeEventRequest(tradeID: "hl-777", modelID: "ev", symbol: "btc", kind: "fill", side: .long,
                                             price: 97_000, size: 0.1, fee: 0.5, timestampMs: 1_764_201_600_000,
                                             payloadJSON: #"{"oid": 5}"#)
        let first = try await client.publishTradeEvent(event)
        #expect(!first.duplicate)
        #expect(first.eventID == "hl-777")
        // A new call (new idempotency key) for the same trade id: acknowledged as a duplicate.
        let second = try await client.publishTradeEvent(event)
        #expect(second.duplicate)
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM engine_store_trade_events").int(0, 0) == 1)
        let redis = try s.redis()
        let guardKey = s.namespace + "ingest:trade:hl-777"
        #expect(try await eventually { try redis.command(["EXISTS", guardKey]).integer == 1 })
        let ttl = try #require(try redis.command(["TTL", guardKey]).integer)
        #expect(ttl > 86_000 && ttl <= 86_400)
        let entries = try #require(try redis.command(["XRANGE", s.namespace + "trades:stream", "-", "+"]).array)
        #expect(entries.count == 1)
        let raw = entries.first?.array?.last?.array ?? []
        let fields = raw.compactMap { $0.text }
        let pairs = Dictionary(uniqueKeysWithValues: stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) })
        #expect(pairs["event_id"] == "hl-777")
        #expect(pairs["type"] == "trade_event")
        #expect(pairs["symbol"] == "BTC")
        #expect(pairs["data"]?.contains("\"oid\": 5") == true || pairs["data"]?.contains("\"oid\":5") == true)
        await client.close()
        await s.stop()
    }
}

@Suite struct ReadTests {
    @Test func openPositionsFallBackToPostgresAndRefillTheCache() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "reader", symbol: "BTC"))
        _ = try await client.savePosition(openRequest(model: "reader", symbol: "ETH"))
        let redis = try s.redis()
        let key = s.namespace + "positions:reader"
        #expect(try await eventually { try redis.command(["HLEN", key]).integer == 2 })
        let hit = try await client.openPositions(model: "reader")
        #expect(hit.source == .cache)
        #expect(hit.positions.map(\.symbol) == ["BTC", "ETH"])

        #expect(try await s.cacheSettled())
        _ = try redis.command(["DEL", key])
        let miss = try await client.openPositions(model: "reader")
        #expect(miss.source == .postgres)
        #expect(miss.positions.map(\.symbol) == ["BTC", "ETH"])
        #expect(try await eventually { try redis.command(["HLEN", key]).integer == 2 })
        #expect(try await client.openPositions(model: "reader").source == .cache)

        // An expired hash is rebuilt whole by the next write, never left partial.
        _ = try redis.command(["DEL", key])
        _ = try await client.savePosition(SavePositionRequest(modelID: "reader", symbol: "BTC", currentPrice: 101))
        #expect(try await eventually { try redis.command(["HLEN", key]).integer == 2 })
        await client.close()
        await s.stop()
    }

    @Test func recentTradesFallBackToPostgres() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        for (i, symbol) in ["A", "B", "C"].enumerated() {
            _ = try await client.savePosition(openRequest(model: "trader", symbol: symbol))
            _ = try await client.closePosition(ClosePositionRequest(modelID: "trader", symbol: symbol, exitPrice: 101,
                                                                    exitTimeMs: 1_764_201_700_000 + Int64(i)))
        }
        let redis = try s.redis()
        let key = s.namespace + "trades:recent:trader"
        #expect(try await eventually { try redis.command(["LLEN", key]).integer == 3 })
        #expect(try await s.cacheSettled())
        _ = try redis.command(["DEL", key])
        let miss = try await client.recentTrades(model: "trader", limit: 2)
        #expect(miss.source == .postgres)
        #expect(miss.trades.map(\.symbol) == ["C", "B"])
        #expect(try await eventually { try redis.command(["LLEN", key]).integer == 3 })
        let hit = try await client.recentTrades(model: "trader", limit: 2)
        #expect(hit.source == .cache)
        #expect(hit.trades.map(\.symbol) == ["C", "B"])
        await client.close()
        await s.stop()
    }
}

@Suite struct GroupCommitTests {
    @Test func oneBadRequestInABatchFailsAloneAndTheOthersCommit() async throws {
        // One worker and many concurrent requests: they share transactions.
        let s = try await RunningServer.start { $0.postgresConnections = 1 }
        let client = s.client()
        try await client.connect()
        let outcomes = try await withThrowingTaskGroup(of: (Int, EngineStoreError?).self) { group in
            for i in 0..<60 {
                group.addTask {
                    var r = openRequest(model: "group", symbol: "G\(i)")
                    // Passes the cheap checks, rejected by Postgres's JSON parser inside the batch.
                    if i % 20 == 7 { r.exitPlanJSON = "{\"unterminated\": " }
                    do {
                        _ = try await client.savePosition(r)
                        return (i, nil)
                    } catch let e as EngineStoreError {
                        return (i, e)
                    }
                }
            }
            var out: [Int: EngineStoreError?] = [:]
            for try await (i, e) in group { out[i] = e }
            return out
        }
        let failed = outcomes.filter { $0.value != nil }.keys.sorted()
        #expect(failed == [7, 27, 47])
        #expect(outcomes[7]??.code == .invalidArgument)
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM positions WHERE model_id = 'group'").int(0, 0) == 57)
        #expect(try pg.exec("SELECT count(*) FROM positions WHERE symbol IN ('G7', 'G27', 'G47')").int(0, 0) == 0)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency").int(0, 0) == 57)
        await client.close()
        await s.stop()
    }
}

@Suite struct CacheFormatTests {
    @Test func aHashRebuiltFromPostgresHoldsTheSameJSONAsFieldWrites() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var r = openRequest(model: "fmt", symbol: "BTC")
        r.leverage = 2.5
        r.confidence = nil
        _ = try await client.savePosition(r)
        _ = try await client.savePosition(openRequest(model: "fmt", symbol: "ETH"))
        let redis = try s.redis()
        let key = s.namespace + "positions:fmt"
        #expect(try await eventually { try redis.command(["HLEN", key]).integer == 2 })
        let written = try #require(try redis.command(["HGET", key, "BTC"]).text)
        // Rebuild from the Postgres snapshot: delete the hash, then write ETH.
        _ = try redis.command(["DEL", key])
        _ = try await client.savePosition(SavePositionRequest(modelID: "fmt", symbol: "ETH", currentPrice: 101))
        #expect(try await eventually { try redis.command(["HLEN", key]).integer == 2 })
        let rebuilt = try #require(try redis.command(["HGET", key, "BTC"]).text)
        #expect(rebuilt == written)
        await client.close()
        await s.stop()
    }
}
