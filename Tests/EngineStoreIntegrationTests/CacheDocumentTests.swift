@testable import EngineStoreServer
import EngineStoreClient
import Foundation
import LibPQ
import TestHarness
import Testing

/// Each cached document has one encoder: what the direct path writes after a commit and what a
/// rebuild from Postgres (Hydrate, the relay, a repair) writes are the same bytes, not merely the
/// same JSON.
@Suite struct CacheDocumentTests {
    @Test func documentsRebuiltFromPostgresAreByteEqualToTheDirectPath() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let redis = try s.redis()
        let pg = try s.postgres()
        let ns = s.namespace
        func outboxEmpty() throws -> Bool { try pg.exec("SELECT count(*) FROM engine_store_outbox").int(0, 0) == 0 }

        // A new model's hash and list are built by the relay; the writes after that go the direct way.
        _ = try await client.savePosition(openRequest(model: "doc", symbol: "BTC"))
        _ = try await client.savePosition(openRequest(model: "doc", symbol: "ETH"))
        _ = try await client.closePosition(ClosePositionRequest(modelID: "doc", symbol: "ETH", exitPrice: 99.5, exitSize: 0.5,
                                                                exitTimeMs: t0 + 5))
        _ = try await client.recordConversation(RecordConversationRequest(modelID: "doc", prompt: "first", response: "reply",
                                                                          timestampMs: t0 + 1))
        #expect(try await eventually {
            try redis.command(["LLEN", ns + "trades:recent:doc"]).integer == 1
                && redis.command(["LLEN", ns + "conversations:doc"]).integer == 2 && outboxEmpty()
        })

        // Awkward numbers and text: float noise, huge and tiny values, escapes, non-ASCII.
        var update = SavePositionRequest(idempotencyKey: UUID().uuidString, modelID: "doc", symbol: "BTC",
                                         quantity: 0.1 + 0.2, leverage: 1e16, confidence: 1e-7)
        update.riskUSD = -0.0
        _ = try await client.savePosition(update)
        _ = try await client.savePosition(openRequest(model: "doc", symbol: "SOL", quantity: 123456789.125))
        _ = try await client.closePosition(ClosePositionRequest(modelID: "doc", symbol: "ETH", exitPrice: 101.75,
                                                                exitTimeMs: t0 + 6, exitCommission: 0.3))
        _ = try await client.publishTradeEvent(PublishTradeEventRequest(
            tradeID: "doc-fill-1", modelID: "doc", symbol: "BTC", kind: "fill", side: .short, price: 0.1 + 0.2, size: 2,
            fee: -0.0, timestampMs: t0 + 8, payloadJSON: #"{"oid": 7, "note": "a\tb"}"#))
        _ = try await client.recordDecisionCycle(RecordDecisionCycleRequest(
            modelID: "doc", decisionsJSON: #"[{"symbol": "btc", "action": "open_long", "confidence": 74.5}]"#, success: false,
            errorMessage: "tab\there \u{1} é \"quoted\" \\"))
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [ModelAnalytics(
            modelID: "doc", payloadJSON: #"{"total_pnl_pct": 12.50, "total_pnl_usd":1e3,"sharpe_ratio": 1.25, "z": [1, 2]}"#,
            serverTimeMs: t0)]))
        _ = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(
            traderID: "doc", exchangeProvider: "hyperliquid", marketProvider: "hl", allocationPct: 33.3,
            cooldownJSON: #"{"b": 1, "a": [true, null]}"#, lastDecisionAtMs: t0 + 7)))
        _ = try await client.recordConversation(RecordConversationRequest(
            modelID: "doc", prompt: "tab\there\nline é \"quoted\" \\ 🚀", response: nil, modelName: "m", timestampMs: t0 + 9,
            topic: "t"))
        #expect(try await eventually { try outboxEmpty() && redis.command(["EXISTS", ns + "leaderboard:cache"]).integer == 1 })

        let strings = ["decision:last:doc", "analytics:doc", "since_inception:doc", "trader:doc:state", "leaderboard:cache"]
        func documents() throws -> [String: String] {
            var out: [String: String] = [:]
            for key in strings { out[key] = try redis.command(["GET", ns + key]).text ?? "<missing>" }
            let fields = try redis.command(["HGETALL", ns + "positions:doc"]).array ?? []
            for i in stride(from: 0, to: fields.count - 1, by: 2) { out["positions:doc " + (fields[i].text ?? "")] = fields[i + 1].text }
            let trades = try redis.command(["LRANGE", ns + "trades:recent:doc", "0", "-1"]).array ?? []
            for (i, t) in trades.enumerated() { out["trades:recent:doc \(i)"] = t.text }
            let messages = try redis.command(["LRANGE", ns + "conversations:doc", "0", "-1"]).array ?? []
            for (i, m) in messages.enumerated() { out["conversations:doc \(i)"] = m.text }
            return out
        }
        let direct = try documents()
        #expect(direct.keys.filter { $0.hasPrefix("positions:") }.count == 2)  // BTC and SOL; ETH closed
        #expect(direct.keys.filter { $0.hasPrefix("trades:") }.count == 2)
        #expect(direct.keys.filter { $0.hasPrefix("conversations:") }.count == 3)  // two prompts, one response
        #expect(!direct.values.contains("<missing>"))

        // Stream entries are appended, never rebuilt in place: the relay's entry for the same event
        // (what it adds when the direct path could not) must carry the same fields.
        let rebuilder = CacheRebuilder(keys: CacheKeys(namespace: ns), ttl: CacheTTL(), streamMaxLength: 1000)
        let session = PostgresSession(connection: try s.postgres())
        let entries = try redis.command(["XRANGE", ns + "trades:stream", "-", "+"]).array ?? []
        #expect(entries.count == 3)  // two closes and one trade event
        for entry in entries {
            let flat = (entry.array?.last?.array ?? []).compactMap(\.text)
            let fields = stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
            let id = try #require(fields.first { $0.0 == "event_id" }?.1)
            let isTradeEvent = fields.contains { $0 == ("type", "trade_event") }
            let intent: OutboxIntent = isTradeEvent ? .tradeEvent(tradeID: id) : .closeEvent(tradeRowID: id)
            let rebuiltFields = try rebuilder.mutations(for: intent, session).compactMap { m -> [(String, String)]? in
                if case .streamAdd(_, _, let f) = m { return f } else { return nil }
            }
            #expect(rebuiltFields.count == 1)
            #expect(rebuiltFields.first.map { $0.map { "\($0.0)=\($0.1)" } } == fields.map { "\($0.0)=\($0.1)" }, "\(id)")
        }

        _ = try redis.command(["DEL"] + (strings + ["positions:doc", "trades:recent:doc", "conversations:doc", "leaderboard"]).map { ns + $0 })
        #expect(try await client.hydrate().ran)
        let rebuilt = try documents()
        for key in Set(direct.keys).union(rebuilt.keys).sorted() {
            #expect(direct[key] == rebuilt[key], "\(key)")
        }
        await client.close()
        await s.stop()
    }
}

/// Every statement of SQL/*.sql prepares against the migrated schema, so a typo in a statement that
/// only a rare path runs (a lost race, a repair) fails here rather than in production.
@Suite struct SQLStatementTests {
    @Test func everyStatementPreparesOnTheMigratedSchema() async throws {
        let db = try await newDatabase()
        _ = try await offPool { try Migrations.apply(conninfo: db) }
        let pg = try PGConnection(conninfo: db)
        // DDL and COPY cannot be prepared; they run as plain statements.
        let plain: Set<SQLText> = [.migrationsTable, .priceTicksCopy]
        for statement in SQLText.allCases where !plain.contains(statement) {
            #expect(throws: Never.self, "\(statement.rawValue)") { try pg.prepare(statement.rawValue, statement.text) }
        }
        let prepared = try pg.exec("SELECT name, cardinality(parameter_types) FROM pg_prepared_statements")
        #expect(prepared.rowCount == SQLText.allCases.count - plain.count)
        // The count `PGCall` checks bindings against is the one Postgres sees.
        for i in 0..<prepared.rowCount {
            let statement = try #require(SQLText(rawValue: prepared.string(i, 0) ?? ""))
            #expect(prepared.int(i, 1) == Int64(statement.parameterCount), "\(statement.rawValue)")
        }
    }
}
