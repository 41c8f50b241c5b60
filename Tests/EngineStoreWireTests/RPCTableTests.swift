import EngineStoreWire
import Testing

/// The generated RPC table (Generated/RPC.swift) against the generated enums and messages: the router,
/// the client, metrics and the fuzz target all read it, so a gap here would be a gap everywhere.
@Suite struct RPCTableTests {
    @Test func everyMethodHasOneDescriptor() {
        #expect(RPC.all.map(\.method) == Method.allCases)
        for m in Method.allCases {
            #expect(m.descriptor.method == m)
            #expect(m.descriptor.name == m.description)
        }
        #expect(Set(RPC.all.map(\.name)).count == RPC.all.count)
    }

    @Test func payloadTypesAreSchemaMessages() {
        let known = Set(WireMessages.all.map { ObjectIdentifier($0) })
        for d in RPC.all {
            #expect(known.contains(ObjectIdentifier(d.requestType)), "\(d.name) request")
            #expect(known.contains(ObjectIdentifier(d.responseType)), "\(d.name) response")
        }
    }

    /// Writes, and only writes, carry an idempotency key (§6, §9); the client fills it in from this.
    @Test func writesAreExactlyTheIdempotentMethods() {
        for d in RPC.all {
            #expect(d.idempotent == (d.kind == .write), "\(d.name)")
            #expect((d.requestType is any IdempotentRequest.Type) == d.idempotent, "\(d.name)")
        }
    }

    /// The `table` label of db_writes_total comes from the `.proto` annotation. Dashboards key on these
    /// values, so a changed label of an existing write fails here rather than silently starting a new
    /// series (a new write only needs its annotation).
    @Test func writesNameTheirTable() {
        for d in RPC.all {
            #expect(d.table.isEmpty == (d.kind != .write), "\(d.name)")
        }
        let labels: [Method: String] = [
            .savePosition: "positions", .closePosition: "trades", .publishTradeEvent: "engine_store_trade_events",
            .saveSnapshot: "account_equity_snapshots", .recordDecisionCycle: "decision_cycles",
            .recordConversation: "conversations", .updateAnalytics: "model_analytics", .saveTraderState: "trader_state",
            .ingestPriceTicks: "price_ticks", .upsertMarketAssets: "market_assets", .upsertAssetContexts: "market_asset_ctx",
        ]
        for (method, table) in labels {
            #expect(method.descriptor.table == table, "\(method)")
        }
    }

    @Test func typedHandlesMatchTheTable() {
        #expect(ObjectIdentifier(RPC.savePosition.descriptor.requestType) == ObjectIdentifier(SavePositionRequest.self))
        #expect(ObjectIdentifier(RPC.saveTraderState.descriptor.responseType) == ObjectIdentifier(TraderStateResponse.self))
        #expect(RPC.recordConversation.method.rawValue == 39)
        #expect(RPC.ping.descriptor.kind == .session)
    }

    /// Every message decodes its own canonical encoding (what the fuzz target relies on as a seed).
    @Test func everyMessageRoundTripsItsEmptyRequiredDefaults() throws {
        for type in WireMessages.all {
            // An empty payload either decodes (no required fields) or names a missing field.
            do {
                let v = try type.init(payload: [UInt8]())
                #expect(try type.init(payload: v.encodedPayload()).encodedPayload() == v.encodedPayload())
            } catch let e {
                guard case .missingField = e else { Issue.record("\(type): \(e)"); continue }
            }
        }
    }
}
