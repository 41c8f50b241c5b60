import EngineStoreClient
import EngineStoreWire
import Foundation
import Testing

/// Cached fields mean what nof0 means by them (proto-spec §10.12).
@Suite struct Nof0FieldTests {
    func object(_ text: String?) throws -> [String: Any] {
        let parsed = try JSONSerialization.jsonObject(with: Data((text ?? "").utf8)) as? [String: Any]
        return try #require(parsed)
    }

    @Test func positionSizeIsUnitsConfidenceAnIntegerAndPricesCarryTs() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let redis = try s.redis()
        let t0: Int64 = 1_764_201_600_000
        _ = try await client.savePosition(openRequest(model: "nf", symbol: "BTC", quantity: 2))
        let closed = try await client.closePosition(ClosePositionRequest(modelID: "nf", symbol: "BTC", exitPrice: 110, exitSize: 0.5,
                                                                         exitTimeMs: t0 + 10))
        _ = try await client.recentTrades(model: "nf", limit: 5)  // builds the list
        #expect(try await eventually { try redis.command(["LLEN", s.namespace + "trades:recent:nf"]).integer == 1 })
        let trade = try object(try redis.command(["LINDEX", s.namespace + "trades:recent:nf", "0"]).text)
        #expect((trade["position_size"] as? NSNumber)?.doubleValue == 0.5)
        #expect(trade["id"] as? String == closed.tradeRowID)
        #expect(try await client.recentTrades(model: "nf", limit: 5).trades.first?.positionSize == 0.5)

        _ = try await client.recordDecisionCycle(RecordDecisionCycleRequest(
            modelID: "nf", decisionsJSON: #"[{"symbol":"btc","action":"open_long","confidence":72.5}]"#, success: true))
        #expect(try await eventually { try redis.command(["EXISTS", s.namespace + "decision:last:nf"]).integer == 1 })
        let decisionText = try #require(try redis.command(["GET", s.namespace + "decision:last:nf"]).text)
        #expect(decisionText.contains("\"confidence\":73,"))
        #expect(try await client.lastDecision(model: "nf").confidence == 73)
        _ = try redis.command(["DEL", s.namespace + "decision:last:nf"])
        #expect(try await client.lastDecision(model: "nf").confidence == 73)  // from Postgres: the same value

        _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(
            ticks: [PriceTick(provider: "hl", symbol: "ETH", price: 3000.5, timestampMs: t0 + 5)]))
        #expect(try await eventually { try redis.command(["EXISTS", s.namespace + "price:latest:hl:ETH"]).integer == 1 })
        let price = try object(try redis.command(["GET", s.namespace + "price:latest:hl:ETH"]).text)
        #expect((price["ts"] as? NSNumber)?.int64Value == t0 + 5)
        #expect((price["ts_ms"] as? NSNumber)?.int64Value == t0 + 5)
        await client.close()
        await s.stop()
    }
}
