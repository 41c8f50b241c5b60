@testable import EngineStoreServer
import EngineStoreWire
import Foundation
import Hiredis
import LibPQ
import Logging
import Synchronization
import Testing

/// `--tick-retention-days`: old ticks go in bounded batches, by tick time on a fake clock, one
/// instance at a time, and nothing else is touched.
@Suite struct TickRetentionTests {
    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_800_000_000_000

    /// Ticks for `symbol` at `now - days[i]` (days may be fractional), inserted directly.
    func insertTicks(_ pg: PGConnection, _ symbol: String, agesInDays: [Double]) throws {
        for age in agesInDays {
            let ts = Self.now - Int64(age * Double(Self.day))
            _ = try pg.execParams("INSERT INTO price_ticks (provider, symbol, price, ts_ms) VALUES ('hl', $1, 1, $2::int8)",
                                  [symbol, String(ts)])
        }
    }

    func count(_ pg: PGConnection, _ whereSQL: String = "true") throws -> Int {
        Int(try pg.exec("SELECT count(*) FROM price_ticks WHERE \(whereSQL)").int(0, 0) ?? -1)
    }

    func retention(_ server: RunningServer, days: Int, batchRows: Int, clock: ClockBox) -> TickRetention {
        var logger = Logger(label: "tick-retention-test")
        logger.logLevel = .warning
        let connections = MaintenanceConnections(conninfo: server.postgresURL, redis: RedisEndpoint(url: server.redisURL)!, logger: logger)
        return TickRetention(connections: connections, retentionDays: days, batchRows: batchRows, nowMillis: { clock.now() })
    }

    @Test func deletesOnlyTicksOlderThanTheCutoffInBatches() async throws {
        let server = try await RunningServer.start()
        let pg = try server.postgres()
        try insertTicks(pg, "BTC", agesInDays: [30, 20, 10, 8, 7.5, 7, 6.9, 1, 0])
        try insertTicks(pg, "ETH", agesInDays: [40, 9, 2])
        let clock = ClockBox(Self.now)
        let job = retention(server, days: 7, batchRows: 2, clock: clock)
        let outcome = job.run()
        #expect(outcome == .init(deleted: 7, ran: true, more: false))
        // Exactly seven days old is kept: only strictly older ticks go.
        #expect(try count(pg) == 5)
        #expect(try count(pg, "ts_ms < \(Self.now - 7 * Self.day)") == 0)
        // The clock moves on a day: the next pass takes what aged out, and nothing more.
        clock.advance(2 * Self.day)
        #expect(job.run().deleted == 2)
        #expect(try count(pg) == 3)
        await server.stop()
    }

    @Test func aPassStopsAtItsBatchBudgetAndTheNextGoesOn() async throws {
        let server = try await RunningServer.start()
        let pg = try server.postgres()
        let old = TickRetention.maxBatchesPerPass + 5
        try insertTicks(pg, "SOL", agesInDays: Array(repeating: 10, count: old) + [1])
        let job = retention(server, days: 7, batchRows: 1, clock: ClockBox(Self.now))
        #expect(job.run() == .init(deleted: TickRetention.maxBatchesPerPass, ran: true, more: true))
        #expect(job.run() == .init(deleted: 5, ran: true, more: false))
        #expect(try count(pg) == 1)
        await server.stop()
    }

    @Test func anotherInstanceHoldingTheLockSkipsThePass() async throws {
        let server = try await RunningServer.start()
        let pg = try server.postgres()
        try insertTicks(pg, "BTC", agesInDays: [30, 1])
        let other = try server.postgres()
        #expect(try other.exec("SELECT pg_try_advisory_lock(\(TickRetention.lockKey))").bool(0, 0) == true)
        let job = retention(server, days: 7, batchRows: 10, clock: ClockBox(Self.now))
        #expect(job.run().ran == false)
        #expect(try count(pg) == 2)
        _ = try other.exec("SELECT pg_advisory_unlock(\(TickRetention.lockKey))")
        #expect(job.run() == .init(deleted: 1, ran: true, more: false))
        await server.stop()
    }

    @Test func theServerDeletesOldTicksWhenConfigured() async throws {
        let server = try await RunningServer.start { config in
            config.tickRetentionDays = 7
            config.tickRetentionIntervalMs = 100
        }
        let realNow = Int64(Date().timeIntervalSince1970 * 1000)
        let ticks = [realNow - 30 * Self.day, realNow - 8 * Self.day, realNow - Self.day].map {
            PriceTick(provider: "hl", symbol: "BTC", price: 100, timestampMs: $0)
        }
        let response = try await server.client().ingestPriceTicks(IngestPriceTicksRequest(idempotencyKey: UUID().uuidString, ticks: ticks))
        #expect(response.stored == 3)
        let pg = try server.postgres()
        #expect(try await eventually { try count(pg) == 1 })
        #expect(try count(pg, "ts_ms = \(realNow - Self.day)") == 1)
        await server.stop()
    }
}

/// A fake wall clock a `@Sendable` closure can read.
final class ClockBox: Sendable {
    private let millis: Mutex<Int64>
    init(_ millis: Int64) { self.millis = Mutex(millis) }
    func now() -> Int64 { millis.withLock { $0 } }
    func advance(_ ms: Int64) { millis.withLock { $0 += ms } }
}
