// libFuzzer target over the wire codec: the frame splitter and every message decoder.
// Built by fuzz/run with `swiftc -sanitize=fuzzer,address` together with Sources/EngineStoreWire.
// Any input must decode or throw a WireError — never trap, never read out of bounds — and what
// decodes must re-encode to bytes that decode to the same value.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // 1. The frame splitter over the whole input, frame after frame.
    var rest = bytes[...]
    while true {
        guard let step = try? FrameParser.next(in: rest, maxFrameBytes: 1 << 20), case .frame(let frame, let consumed) = step else { break }
        decodeAll(frame.payload)
        rest = rest.dropFirst(consumed)
    }
    // 2. Every message decoder over the raw input as a payload.
    decodeAll(bytes[...])
    return 0
}

func check<M: WireMessage>(_: M.Type, _ payload: ArraySlice<UInt8>) {
    guard let value = try? M(payload: payload) else { return }
    let again = value.encodedPayload()
    guard let decoded = try? M(payload: again) else { fatalError("\(M.self): re-encoded bytes do not decode") }
    // NaN payloads compare unequal to themselves; compare encodings instead.
    if decoded.encodedPayload() != again { fatalError("\(M.self): encoding not stable") }
}

func decodeAll(_ p: ArraySlice<UInt8>) {
    check(HelloRequest.self, p); check(HelloResponse.self, p); check(HealthRequest.self, p); check(HealthResponse.self, p)
    check(ComponentHealth.self, p); check(PingMessage.self, p); check(ErrorPayload.self, p); check(Notice.self, p)
    check(SavePositionRequest.self, p); check(SavePositionResponse.self, p)
    check(ClosePositionRequest.self, p); check(ClosePositionResponse.self, p)
    check(PublishTradeEventRequest.self, p); check(PublishTradeEventResponse.self, p)
    check(GetOpenPositionsRequest.self, p); check(GetOpenPositionsResponse.self, p); check(PositionSnapshot.self, p)
    check(GetRecentTradesRequest.self, p); check(GetRecentTradesResponse.self, p); check(TradeSnapshot.self, p)
    check(SaveSnapshotRequest.self, p); check(SaveSnapshotResponse.self, p); check(AccountSnapshot.self, p); check(PositionMark.self, p)
    check(RecordDecisionCycleRequest.self, p); check(RecordDecisionCycleResponse.self, p)
    check(GetLastDecisionRequest.self, p); check(LastDecision.self, p)
    check(RecordConversationRequest.self, p); check(RecordConversationResponse.self, p)
    check(UpdateAnalyticsRequest.self, p); check(UpdateAnalyticsResponse.self, p); check(ModelAnalytics.self, p)
    check(GetLeaderboardRequest.self, p); check(GetLeaderboardResponse.self, p)
    check(SaveTraderStateRequest.self, p); check(GetTraderStateRequest.self, p); check(TraderStateResponse.self, p); check(TraderState.self, p)
    check(IngestPriceTicksRequest.self, p); check(IngestPriceTicksResponse.self, p); check(PriceTick.self, p)
    check(UpsertMarketAssetsRequest.self, p); check(UpsertAssetContextsRequest.self, p); check(UpsertCountResponse.self, p)
    check(HydrateRequest.self, p); check(HydrateResponse.self, p); check(CheckConsistencyRequest.self, p)
    check(CheckConsistencyResponse.self, p); check(StatsRequest.self, p); check(StatsResponse.self, p)
}
