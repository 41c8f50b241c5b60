import EngineStoreClient
import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import TestHarness
import Testing

@Suite struct HandshakeAndHealthTests {
    @Test func helloReportsLimitsAndHealthIsOK() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let hello = try await client.connect()
        #expect(hello.version == 1)
        #expect(hello.maxFrameBytes == 4 * 1024 * 1024)
        #expect(hello.methods.contains(16))
        // Every method of the RPC table is routed (a method without a family fails here).
        #expect(Set(hello.methods) == Set(RPC.all.map { UInt64($0.method.rawValue) }))
        let health = try await client.health()
        #expect(health.status == .ok)
        #expect(health.postgres.ok)
        #expect(health.redis.ok)
        #expect(health.openConnections >= 1)
        await client.close()
        await s.stop()
    }

    /// A Hello with a bad field gets `invalid_argument` with `field` naming it (§4.1, §5.5), echoing the
    /// request id and method 1, and then the connection is closed.
    @Test func badHelloFieldsAreNamedInTheError() async throws {
        func fields(_ build: (inout FieldWriter) -> Void) -> [UInt8] {
            var w = FieldWriter()
            build(&w)
            return w.writer.bytes
        }
        let cases: [(name: String, payload: [UInt8], field: String)] = [
            ("missing min_version", fields { $0.uint(2, 1); $0.string(3, "x") }, "min_version"),
            ("min_version above 2^32-1", fields { $0.uint(1, 1 << 32); $0.uint(2, 1) }, "min_version"),
            ("invalid UTF-8 in client_name", fields { $0.uint(1, 1); $0.bytes(3, [0xc3, 0x28]) }, "client_name"),
            ("duplicate min_version", fields { $0.uint(1, 1); $0.uint(1, 1) }, "min_version"),
            ("min_version with the wrong wire type", fields { $0.string(1, "one") }, "min_version"),
        ]
        let s = try await RunningServer.start()
        let path = s.socketPath
        for c in cases {
            let (reply, closed): (Frame?, Bool) = try await offPool {
                let raw = try RawConnection(path: path)
                raw.send(Frame(header: FrameHeader(kind: .request, method: 1, requestID: 41), payload: c.payload).encoded())
                let reply = try raw.readFrame()
                return (reply, raw.isClosedByServer())
            }
            let e = errorPayload(reply)
            #expect(e?.errorCode == .invalidArgument, "\(c.name): \(String(describing: e))")
            #expect(e?.field == c.field, "\(c.name): \(String(describing: e))")
            #expect(e?.message.contains(c.field) == true, "\(c.name)")
            #expect(reply?.header.requestID == 41, "\(c.name)")
            #expect(reply?.header.method == 1, "\(c.name)")
            #expect(closed, "\(c.name): the connection should close")
        }
        await s.stop()
    }

    @Test func redisDownIsDegradedNotUnhealthy() async throws {
        // A Redis endpoint nobody listens on: writes still work, health says degraded.
        let s = try await RunningServer.start { $0.redis = RedisEndpoint(url: "unix:///tmp/nobody-here-\(UUID().uuidString.prefix(8)).sock")! }
        let client = s.client()
        let health = try await client.health()
        #expect(health.status == .degraded)
        #expect(!health.redis.ok)
        let saved = try await client.savePosition(openRequest(model: "m-degraded", symbol: "ETH"))
        #expect(saved.opened)
        await client.close()
        await s.stop()
    }

    @Test func postgresDownIsUnhealthyAndWritesFailFastRetryable() async throws {
        let db = try await newDatabase()
        let s = try await RunningServer.start(database: db)
        await s.stop()
        // Restart the same database's server with a bad password-free URL that points nowhere.
        let bad = try await RunningServer.start(database: db) {
            $0.postgresURL = "host=/tmp/no-postgres-here port=5432 dbname=x user=postgres"
            $0.migrate = false
        }
        var config = ClientConfiguration(socketPath: bad.socketPath)
        config.defaultTimeout = .seconds(2)
        let client = EngineStoreClient(configuration: config)
        // Health's own bound is HealthFaultTests'; here a starved host once took the 2 s just to connect.
        let health = try await client.health(timeout: .seconds(15))
        #expect(health.status == .unhealthy)
        // Each attempt must fail (a success would be a bug here), retryable, at about the client's 2 s
        // deadline (it retries `unavailable` until then), not after the server's 30 s default. The
        // bound is per attempt and twice the deadline: a CI host starved for a minute once took 6.3 s
        // for two attempts under a bound of 6 s for both.
        for attempt in 1...2 {
            let start = ContinuousClock.now
            let error = await #expect(throws: EngineStoreError.self, "attempt \(attempt)") {
                try await client.savePosition(openRequest(model: "m", symbol: "BTC"))
            }
            #expect(error?.retryable == true, "attempt \(attempt): \(String(describing: error))")
            #expect(error?.code == .unavailable || error?.code == .deadlineExceeded, "attempt \(attempt): \(String(describing: error))")
            let took = ContinuousClock.now - start
            #expect(took < .seconds(4), "attempt \(attempt) took \(took)")
        }
        await client.close()
        await bad.stop()
    }
}

@Suite struct SavePositionTests {
    @Test func openWritesPostgresThenRedisHash() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var request = openRequest(model: "gpt-5", symbol: "btc")
        request.exitPlanJSON = #"{"stop_loss": 95000}"#
        request.entryOID = 42
        let saved = try await client.savePosition(request)
        #expect(saved.opened)

        let pg = try s.postgres()
        let row = try pg.execParams(
            "SELECT id, symbol, side, quantity, entry_price, status, exit_plan->>'stop_loss', entry_oid FROM positions WHERE model_id = $1",
            ["gpt-5"])
        #expect(row.rowCount == 1)
        #expect(row.string(0, 0) == saved.positionID)
        #expect(row.string(0, 1) == "BTC")
        #expect(row.string(0, 2) == "long")
        #expect(row.double(0, 3) == 1.5)
        #expect(row.double(0, 4) == 100.25)
        #expect(row.string(0, 5) == "open")
        #expect(row.string(0, 6) == "95000")
        #expect(row.int(0, 7) == 42)

        let redis = try s.redis()
        let key = s.namespace + "positions:gpt-5"
        #expect(try await eventually { try redis.command(["HEXISTS", key, "BTC"]).integer == 1 })
        let json = try #require(try redis.command(["HGET", key, "BTC"]).text)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["symbol"] as? String == "BTC")
        #expect(object["side"] as? String == "long")
        #expect(object["quantity"] as? Double == 1.5)
        #expect(object["entry_price"] as? Double == 100.25)
        #expect(object["leverage"] as? Double == 5)
        #expect(object["exchange"] as? String == "hyperliquid")
        #expect(object["updated_at_ms"] is Int)
        let ttl = try #require(try redis.command(["TTL", key]).integer)
        #expect(ttl > 0 && ttl <= 30)
        await client.close()
        await s.stop()
    }

    @Test func secondSaveUpdatesOnlyFieldsSent() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let first = try await client.savePosition(openRequest(model: "m1", symbol: "ETH"))
        let update = SavePositionRequest(idempotencyKey: UUID().uuidString, modelID: "m1", symbol: "ETH",
                                         tpOID: 7, currentPrice: 101, unrealizedPnl: 1.1)
        let second = try await client.savePosition(update)
        #expect(!second.opened)
        #expect(second.positionID == first.positionID)
        let row = try s.postgres().execParams(
            "SELECT count(*), max(quantity), max(tp_oid), max(current_price) FROM positions WHERE model_id = 'm1'", [])
        #expect(row.int(0, 0) == 1)
        #expect(row.double(0, 1) == 1.5)
        #expect(row.int(0, 2) == 7)
        #expect(row.double(0, 3) == 101)
        await client.close()
        await s.stop()
    }

    @Test(arguments: ["quantity", "entry_price", "symbol", "model_id", "entry_time_ms", "side", "exit_plan_json"])
    func invalidInputIsRejectedAndWritesNothing(_ field: String) async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var request = openRequest(model: "bad", symbol: "SOL")
        switch field {
        case "quantity": request.quantity = -1
        case "entry_price": request.entryPrice = .nan
        case "symbol": request.symbol = ""
        case "model_id": request.modelID = String(repeating: "x", count: 200)
        case "entry_time_ms": request.entryTimeMs = 1_764_201_600  // seconds, not ms
        case "side": request.side = nil
        default: request.exitPlanJSON = "not json"
        }
        do {
            _ = try await client.savePosition(request)
            Issue.record("expected invalid_argument for \(field)")
        } catch let e as EngineStoreError {
            #expect(e.code == .invalidArgument)
            #expect(e.field == field)
            #expect(!e.retryable)
        }
        #expect(try s.postgres().exec("SELECT count(*) FROM positions").int(0, 0) == 0)
        #expect(try s.redis().command(["EXISTS", s.namespace + "positions:bad"]).integer == 0)
        await client.close()
        await s.stop()
    }

    @Test func jsonRejectedByPostgresIsInvalidArgument() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var request = openRequest(model: "bad-json", symbol: "SOL")
        request.exitPlanJSON = "{not really json"
        let error = await #expect(throws: EngineStoreError.self) { try await client.savePosition(request) }
        #expect(error?.code == .invalidArgument)
        #expect(try s.postgres().exec("SELECT count(*) FROM positions").int(0, 0) == 0)
        await client.close()
        await s.stop()
    }

    @Test func thousandConcurrentPipelinedCallsFromOneClient() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        try await client.connect()
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<1000 {
                group.addTask { try await client.savePosition(openRequest(model: "pipelined", symbol: "S\(i)")).opened }
            }
            var opened = 0
            for try await o in group where o { opened += 1 }
            return opened
        }
        #expect(results == 1000)
        #expect(try s.postgres().exec("SELECT count(*) FROM positions WHERE model_id = 'pipelined' AND status = 'open'").int(0, 0) == 1000)
        let redis = try s.redis()
        #expect(try await eventually { try redis.command(["HLEN", s.namespace + "positions:pipelined"]).integer == 1000 })
        await client.close()
        await s.stop()
    }

    @Test func concurrentOpensOfOneSymbolKeepOneOpenRow() async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 4 }
        let client = s.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { _ = try await client.savePosition(openRequest(model: "race", symbol: "BTC")) }
            }
            try await group.waitForAll()
        }
        #expect(try s.postgres().exec("SELECT count(*) FROM positions WHERE model_id = 'race' AND status = 'open'").int(0, 0) == 1)
        await client.close()
        await s.stop()
    }
}

@Suite struct MigrationTests {
    @Test func migrateTwiceIsIdempotent() async throws {
        let db = try await newDatabase()
        let first = try await offPool { try Migrations.apply(conninfo: db) }
        #expect(first == Migrations.all.map(\.version))
        let second = try await offPool { try Migrations.apply(conninfo: db) }
        #expect(second.isEmpty)
    }

    @Test func migrateOnTopOfExistingNof0Schema() async throws {
        let db = try await newDatabase()
        let pg = try PGConnection(conninfo: db)
        // The shape nof0's own migrations leave behind (subset), with data the old writer produced.
        try pg.exec("""
            CREATE TABLE positions (
                id TEXT PRIMARY KEY, model_id TEXT NOT NULL, exchange_provider TEXT NOT NULL, symbol TEXT NOT NULL,
                side TEXT NOT NULL DEFAULT 'long', status TEXT NOT NULL DEFAULT 'open', entry_oid BIGINT,
                risk_usd DOUBLE PRECISION, confidence DOUBLE PRECISION, index_col JSONB, exit_plan JSONB,
                entry_time_ms BIGINT NOT NULL, entry_price DOUBLE PRECISION NOT NULL, tp_oid BIGINT, margin DOUBLE PRECISION,
                wait_for_fill BOOLEAN NOT NULL DEFAULT false, sl_oid BIGINT, current_price DOUBLE PRECISION,
                closed_pnl DOUBLE PRECISION, liquidation_price DOUBLE PRECISION, commission DOUBLE PRECISION,
                leverage DOUBLE PRECISION, slippage DOUBLE PRECISION, quantity DOUBLE PRECISION NOT NULL,
                unrealized_pnl DOUBLE PRECISION, updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                created_at TIMESTAMPTZ NOT NULL DEFAULT now());
            CREATE INDEX idx_positions_model_symbol_open ON positions (model_id, symbol) WHERE status = 'open';
            CREATE TABLE model_analytics (model_id TEXT PRIMARY KEY, payload JSONB NOT NULL, server_time_ms BIGINT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), metadata JSONB NOT NULL DEFAULT '{}');
            CREATE TABLE symbols (id TEXT PRIMARY KEY);
            INSERT INTO positions (id, model_id, exchange_provider, symbol, entry_time_ms, entry_price, quantity)
                VALUES ('old|BTC', 'old', 'hyperliquid', 'BTC', 1764201600000, 90000, 1);
            """)
        let applied = try await offPool { try Migrations.apply(conninfo: db) }
        #expect(applied == Migrations.all.map(\.version))
        #expect(try pg.exec("SELECT count(*) FROM positions").int(0, 0) == 1)
        #expect(try pg.exec("SELECT to_regclass('price_ticks') IS NOT NULL").bool(0, 0) == true)
        #expect(try Migrations.apply(conninfo: db).isEmpty)

        // The service writes next to the old row, and the old row's open position is updated, not duplicated.
        let s = try await RunningServer.start(database: db)
        let client = s.client()
        let r = try await client.savePosition(SavePositionRequest(idempotencyKey: "k1", modelID: "old", symbol: "BTC", currentPrice: 91000))
        #expect(!r.opened)
        #expect(r.positionID == "old|BTC")
        await client.close()
        await s.stop()
    }
}
