import EngineStoreWire
import Foundation
import Testing

/// Every message and frame kind has a golden frame in proto-spec/golden/. Each is decoded, compared
/// with the value it must mean, and re-encoded byte for byte. Set ENGINE_STORE_WRITE_GOLDEN=1 to
/// (re)write the files from these values after a deliberate protocol change.
struct GoldenCase: Sendable, CustomTestStringConvertible {
    let file: String
    let header: FrameHeader
    let check: @Sendable (ArraySlice<UInt8>) throws -> Bool
    let payload: [UInt8]
    var testDescription: String { file }

    init<M: WireMessage>(_ file: String, _ header: FrameHeader, _ message: M) {
        self.file = file
        self.header = header
        self.payload = message.encodedPayload()
        self.check = { bytes in try M(payload: bytes) == message }
    }
}

let goldenDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("proto-spec/golden")

let goldenCases: [GoldenCase] = [
    GoldenCase("hello.request.hex", FrameHeader(kind: .request, method: 1, requestID: 1),
               HelloRequest(minVersion: 1, maxVersion: 1, clientName: "probe")),
    GoldenCase("hello.response.hex", FrameHeader(kind: .response, method: 1, requestID: 1),
               HelloResponse(version: 1, serverName: "engine-store", serverVersion: "0.1.0", maxFrameBytes: 4_194_304,
                             maxInFlight: 1024, instanceID: "5e1f00d1",
                             methods: [1, 2, 6, 16, 17, 18, 19, 20, 32, 33, 34, 35, 36, 37, 38, 48, 49, 50])),
    GoldenCase("health.request.hex", FrameHeader(kind: .request, method: 2, requestID: 2, deadlineMs: 2000),
               HealthRequest()),
    GoldenCase("health.response.hex", FrameHeader(kind: .response, method: 2, requestID: 2),
               HealthResponse(status: .degraded, postgres: ComponentHealth(ok: true, latencyMicros: 412),
                              redis: ComponentHealth(ok: false, latencyMicros: 0, error: "connection refused"),
                              uptimeMs: 93_000, openConnections: 3, instanceID: "5e1f00d1", serverVersion: "0.1.0")),
    GoldenCase("ping.request.hex", FrameHeader(kind: .request, method: 6, requestID: 3), PingMessage(payload: [0xca, 0xfe])),
    GoldenCase("ping.response.hex", FrameHeader(kind: .response, method: 6, requestID: 3), PingMessage(payload: [0xca, 0xfe])),
    GoldenCase("save_position.request.hex", FrameHeader(kind: .request, method: 16, requestID: 7, deadlineMs: 5000),
               SavePositionRequest(idempotencyKey: "open-btc-1", modelID: "gpt-5", symbol: "BTC",
                                   exchangeProvider: "hyperliquid", side: .long, quantity: 0.5, entryPrice: 97_250.5,
                                   entryTimeMs: 1_764_201_600_000, leverage: 10, confidence: 0.72, riskUSD: 250,
                                   margin: 4862.5, entryOID: 123_456_789, tpOID: 123_456_790, slOID: 123_456_791,
                                   waitForFill: false, exitPlanJSON: #"{"stop_loss":95000,"take_profit":101000}"#)),
    GoldenCase("save_position.request.retry.hex", FrameHeader(kind: .request, method: 16, requestID: 8, flags: .retry, deadlineMs: 4000),
               SavePositionRequest(idempotencyKey: "mark-btc-9", modelID: "gpt-5", symbol: "BTC",
                                   currentPrice: 97_900, unrealizedPnl: 324.75, liquidationPrice: 88_000)),
    GoldenCase("save_position.response.hex", FrameHeader(kind: .response, method: 16, requestID: 7),
               SavePositionResponse(positionID: "gpt-5|BTC|1764201600000|9f3a2b1c", opened: true, updatedAtMs: 1_764_201_600_123)),
    GoldenCase("save_position.response.replayed.hex", FrameHeader(kind: .response, method: 16, requestID: 8, flags: .replayed),
               SavePositionResponse(positionID: "gpt-5|BTC|1764201600000|9f3a2b1c", opened: false, updatedAtMs: 1_764_201_660_000)),
    GoldenCase("close_position.request.hex", FrameHeader(kind: .request, method: 17, requestID: 10, deadlineMs: 5000),
               ClosePositionRequest(idempotencyKey: "close-btc-1", modelID: "gpt-5", symbol: "BTC", exitPrice: 98_100,
                                    exitSize: 0.25, exitTimeMs: 1_764_205_200_000, exitOID: 123_456_800, exitTID: 987_654,
                                    exitCommission: 11.03, exitCrossed: true, tradeID: "0xabc")),
    GoldenCase("close_position.response.hex", FrameHeader(kind: .response, method: 17, requestID: 10),
               ClosePositionResponse(tradeRowID: "gpt-5|BTC|1764205200000|0a1b2c3d", positionID: "gpt-5|BTC|1764201600000|9f3a2b1c",
                                     fullyClosed: false, closedSize: 0.25, remainingSize: 0.25, realizedGrossPnl: 212.375,
                                     realizedNetPnl: 199.5, totalCommission: 12.875)),
    GoldenCase("publish_trade_event.request.hex", FrameHeader(kind: .request, method: 18, requestID: 11, deadlineMs: 5000),
               PublishTradeEventRequest(idempotencyKey: "ev-1", tradeID: "hl-777", modelID: "gpt-5", symbol: "BTC", kind: "fill",
                                        side: .long, price: 97_000, size: 0.1, fee: 0.5, timestampMs: 1_764_201_600_000,
                                        payloadJSON: #"{"oid":5}"#)),
    GoldenCase("publish_trade_event.response.hex", FrameHeader(kind: .response, method: 18, requestID: 11),
               PublishTradeEventResponse(duplicate: true, eventID: "hl-777")),
    GoldenCase("get_open_positions.request.hex", FrameHeader(kind: .request, method: 19, requestID: 12),
               GetOpenPositionsRequest(modelID: "gpt-5")),
    GoldenCase("get_open_positions.response.hex", FrameHeader(kind: .response, method: 19, requestID: 12),
               GetOpenPositionsResponse(positions: [
                   PositionSnapshot(symbol: "BTC", side: .long, quantity: 0.5, entryPrice: 97_250.5, leverage: 10, confidence: 0.72,
                                    riskUSD: 250, updatedAtMs: 1_764_201_600_123, exchange: "hyperliquid"),
                   PositionSnapshot(symbol: "ETH", side: .short, quantity: 3, entryPrice: 3100, leverage: nil, confidence: nil,
                                    riskUSD: nil, updatedAtMs: 1_764_201_600_456, exchange: "hyperliquid"),
               ], source: .cache)),
    GoldenCase("get_recent_trades.request.hex", FrameHeader(kind: .request, method: 20, requestID: 13),
               GetRecentTradesRequest(modelID: "gpt-5", limit: 10)),
    GoldenCase("get_recent_trades.response.hex", FrameHeader(kind: .response, method: 20, requestID: 13),
               GetRecentTradesResponse(trades: [
                   TradeSnapshot(modelID: "gpt-5", symbol: "BTC", side: .long, quantity: 0.25, entryPrice: 97_250.5, exitPrice: 98_100,
                                 realizedPnl: 199.5, confidence: 0.72, closedAtMs: 1_764_205_200_000, exchange: "hyperliquid",
                                 entryTimeMs: 1_764_201_600_000, leverage: 10, positionSize: 24_312.625),
               ], source: .postgres)),
    GoldenCase("save_snapshot.request.hex", FrameHeader(kind: .request, method: 32, requestID: 20, deadlineMs: 5000),
               SaveSnapshotRequest(idempotencyKey: "snap-1", snapshots: [
                   AccountSnapshot(modelID: "gpt-5", timestampMs: 1_764_201_600_000, dollarEquity: 10_512.25, realizedPnl: 212.5,
                                   totalUnrealizedPnl: 299.75, cumPnlPct: 5.12, sharpeRatio: 1.4, sinceInceptionHourlyMarker: 12,
                                   sinceInceptionMinuteMarker: 720, metadataJSON: #"{"source":"sync"}"#,
                                   marks: [PositionMark(symbol: "BTC", currentPrice: 98_100, unrealizedPnl: 424.75, liquidationPrice: 88_000)]),
               ])),
    GoldenCase("save_snapshot.response.hex", FrameHeader(kind: .response, method: 32, requestID: 20),
               SaveSnapshotResponse(results: [SnapshotResult(modelID: "gpt-5", stored: false, lastStoredMs: 1_764_201_400_000, marksApplied: 1)])),
    GoldenCase("record_decision_cycle.request.hex", FrameHeader(kind: .request, method: 33, requestID: 21, deadlineMs: 5000),
               RecordDecisionCycleRequest(idempotencyKey: "cycle-42", modelID: "gpt-5", cycleNumber: 42, promptDigest: "sha256:9f86d0",
                                          cotTrace: "BTC momentum is strong; open long.",
                                          decisionsJSON: #"[{"symbol":"BTC","action":"open_long","confidence":0.72}]"#,
                                          success: true, executedAtMs: 1_764_201_600_000)),
    GoldenCase("record_decision_cycle.response.hex", FrameHeader(kind: .response, method: 33, requestID: 21),
               RecordDecisionCycleResponse(id: 1042, executedAtMs: 1_764_201_600_000)),
    GoldenCase("record_conversation.request.hex", FrameHeader(kind: .request, method: 39, requestID: 27, deadlineMs: 5000),
               RecordConversationRequest(idempotencyKey: "conv-42", modelID: "gpt-5", prompt: "BTC 97250.5, ETH 3100. Decide.",
                                         response: #"[{"symbol":"BTC","action":"open_long"}]"#, promptTokens: 1200,
                                         completionTokens: 85, totalTokens: 1285, modelName: "gpt-5-2025-08-07",
                                         timestampMs: 1_764_201_600_000, topic: "decision")),
    // What the server answers to record_conversation.request.hex on a new database (GoldenServerTests).
    GoldenCase("record_conversation.response.hex", FrameHeader(kind: .response, method: 39, requestID: 27),
               RecordConversationResponse(conversationID: 1, timestampMs: 1_764_201_600_000)),
    GoldenCase("get_last_decision.request.hex", FrameHeader(kind: .request, method: 37, requestID: 22),
               GetLastDecisionRequest(modelID: "gpt-5")),
    GoldenCase("get_last_decision.response.hex", FrameHeader(kind: .response, method: 37, requestID: 22),
               LastDecision(modelID: "gpt-5", success: true, timestampMs: 1_764_201_600_000, symbol: "BTC", action: "open_long",
                            confidence: 0.72, error: nil, source: .cache)),
    GoldenCase("update_analytics.request.hex", FrameHeader(kind: .request, method: 34, requestID: 23, deadlineMs: 5000),
               UpdateAnalyticsRequest(idempotencyKey: "analytics-7", entries: [
                   ModelAnalytics(modelID: "gpt-5", payloadJSON: #"{"total_pnl_usd":512.25,"total_pnl_pct":5.12,"sharpe_ratio":1.4}"#,
                                  serverTimeMs: 1_764_201_600_000),
               ])),
    GoldenCase("update_analytics.response.hex", FrameHeader(kind: .response, method: 34, requestID: 23),
               UpdateAnalyticsResponse(updated: 1)),
    GoldenCase("get_leaderboard.request.hex", FrameHeader(kind: .request, method: 38, requestID: 24),
               GetLeaderboardRequest(limit: 10)),
    GoldenCase("get_leaderboard.response.hex", FrameHeader(kind: .response, method: 38, requestID: 24),
               GetLeaderboardResponse(entries: [LeaderboardEntry(modelID: "gpt-5", score: 5.12),
                                                LeaderboardEntry(modelID: "claude", score: -1.5)], source: .cache)),
    GoldenCase("save_trader_state.request.hex", FrameHeader(kind: .request, method: 35, requestID: 25, deadlineMs: 5000),
               SaveTraderStateRequest(idempotencyKey: "state-3", state: TraderState(
                   traderID: "gpt-5", exchangeProvider: "hyperliquid", marketProvider: "hyperliquid", allocationPct: 25,
                   cooldownJSON: #"{"BTC":1764201600000}"#, riskGuardsJSON: #"{"max_drawdown_pct":20}"#,
                   lastDecisionAtMs: 1_764_201_600_000, pauseUntilMs: 1_764_205_200_000))),
    GoldenCase("save_trader_state.response.hex", FrameHeader(kind: .response, method: 35, requestID: 25),
               // What the server answers to save_trader_state.request.hex on a new trader: every stored field set,
               // the JSON in Postgres' jsonb text form (EngineStoreIntegrationTests.GoldenServerTests checks this).
               TraderStateResponse(state: TraderState(traderID: "gpt-5", exchangeProvider: "hyperliquid", marketProvider: "hyperliquid",
                                                      allocationPct: 25, cooldownJSON: #"{"BTC": 1764201600000}"#,
                                                      riskGuardsJSON: #"{"max_drawdown_pct": 20}"#, lastDecisionAtMs: 1_764_201_600_000,
                                                      pauseUntilMs: 1_764_205_200_000, updatedAtMs: 1_764_201_600_123), source: .postgres)),
    GoldenCase("get_trader_state.request.hex", FrameHeader(kind: .request, method: 36, requestID: 26),
               GetTraderStateRequest(traderID: "gpt-5")),
    GoldenCase("error.not_found.hex", FrameHeader(kind: .error, method: 17, requestID: 14),
               ErrorPayload(code: .notFound, message: "no open position for gpt-5 DOGE")),
    GoldenCase("error.conflict.hex", FrameHeader(kind: .error, method: 16, requestID: 15),
               ErrorPayload(code: .conflict, message: "idempotency key k was used for a different request", field: "idempotency_key")),
    GoldenCase("error.invalid_argument.hex", FrameHeader(kind: .error, method: 16, requestID: 7),
               ErrorPayload(code: .invalidArgument, message: "quantity: must be positive", field: "quantity")),
    GoldenCase("error.unavailable.hex", FrameHeader(kind: .error, method: 16, requestID: 7),
               ErrorPayload(code: .unavailable, message: "postgres unavailable; retry with the same idempotency key")),
    GoldenCase("error.protocol_error.hex", FrameHeader(kind: .error, method: 0, requestID: 0),
               ErrorPayload(code: .protocolError, message: "frame length 5 shorter than the 14-byte header")),
    GoldenCase("error.failed_precondition.hex", FrameHeader(kind: .error, method: 2, requestID: 1),
               ErrorPayload(code: .failedPrecondition, message: "the first request must be Hello")),
    GoldenCase("notice.going_away.hex", FrameHeader(kind: .notice, method: 0, requestID: 0),
               Notice(code: .goingAway, message: "server shutting down")),
]

func hexDecode(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    for line in text.split(separator: "\n") {
        let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let digits = content.filter { $0.isHexDigit }
        var i = digits.startIndex
        while i < digits.endIndex {
            let j = digits.index(after: i)
            bytes.append(UInt8(digits[i...j], radix: 16)!)
            i = digits.index(after: j)
        }
    }
    return bytes
}

func hexEncode(_ bytes: [UInt8], comment: String) -> String {
    var out = "# \(comment)\n"
    for chunk in stride(from: 0, to: bytes.count, by: 16) {
        out += bytes[chunk..<min(chunk + 16, bytes.count)].map { String(format: "%02x", $0) }.joined(separator: " ") + "\n"
    }
    return out
}

@Suite struct GoldenFrameTests {
    @Test(arguments: goldenCases)
    func decodesAndReencodesByteForByte(_ c: GoldenCase) throws {
        let url = goldenDirectory.appendingPathComponent(c.file)
        let expected = Frame(header: c.header, payload: c.payload).encoded()
        if ProcessInfo.processInfo.environment["ENGINE_STORE_WRITE_GOLDEN"] == "1" {
            let h = c.header
            let comment = "kind=\(h.kind) method=\(h.method) request_id=\(h.requestID) flags=\(h.flags.rawValue) deadline_ms=\(h.deadlineMs) length=\(expected.count - 4)"
            try hexEncode(expected, comment: comment).write(to: url, atomically: true, encoding: .utf8)
        }
        let bytes = hexDecode(try String(contentsOf: url, encoding: .utf8))
        let frame = try FrameParser.decodeSingle(bytes)
        #expect(frame.header == c.header)
        #expect(try c.check(frame.payload))
        #expect(Frame(header: frame.header, payload: frame.payload).encoded() == bytes)
        #expect(bytes == expected)
    }

    @Test func everyGoldenFileIsCovered() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: goldenDirectory.path).filter { $0.hasSuffix(".hex") }
        #expect(Set(files) == Set(goldenCases.map(\.file)))
    }
}
