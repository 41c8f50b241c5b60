import EngineStoreWire
import LibPQ

/// PublishTradeEvent: a durable event row guarded by the exchange's trade id; a new event sets the
/// 24 h ingest guard and goes onto the trade stream with `event_id` = trade id. A repeat is
/// acknowledged with `duplicate = true` and publishes nothing.
struct TradeEventRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.publishTradeEvent] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        var r = try PublishTradeEventRequest.decodeWrite(payload)
        try Validate.keyPart(r.tradeID, "trade_id")
        try Validate.keyPart(r.modelID, "model_id")
        r.symbol = try Validate.symbol(r.symbol)
        try Validate.identifier(r.kind, "kind", maxBytes: 32)
        try Validate.positive(r.price, "price")
        try Validate.positive(r.size, "size")
        try Validate.finite(r.fee, "fee")
        try Validate.timestampMs(r.timestampMs, "timestamp_ms", maxSkewMs: context.configuration.maxClockSkewMs)
        try Validate.json(r.payloadJSON, "payload_json")
        context.submitWrite(r, method, payload: payload,
            body: TradeEventBody(request: r, keys: context.keys, streamMaxLength: context.configuration.streamMaxLength),
            reply: reply)
    }
}

struct TradeEventBody: BatchableWrite {
    let request: PublishTradeEventRequest
    let keys: CacheKeys
    let streamMaxLength: Int

    var lockKeys: [String] { [LockOrder.tradeEvent(request.tradeID)] }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let duplicate = try session.first(TradeStore.InsertEvent(event: request)) == nil
        return outcome(outboxID: duplicate ? nil : try Outbox.record(session, [.tradeEvent(tradeID: request.tradeID)]).first,
                       duplicate: duplicate)
    }

    /// Events of a batch share `trade_event_insert_batch`.
    func batchRow() -> (statement: SQLText, row: [String?])? {
        (SQLText.tradeEventInsertBatch, TradeStore.InsertEvent(event: request).bindings)
    }

    /// The statement records the key: a new event's reply, and a duplicate's.
    var batchReplies: BatchReplies? { (reply(duplicate: false), reply(duplicate: true)) }

    /// The reply the statement recorded, not encoded a third time.
    func outcome(batchRow row: PGRow, recorded: BatchReplies?) -> JobOutcome {
        let outboxID = row.int("outbox_id"), duplicate = outboxID == nil
        return outcome(outboxID: outboxID, duplicate: duplicate, reply: recorded.flatMap { duplicate ? $0.duplicate : $0.written })
    }

    /// A new event's reply and cache work (the ingest guard, the stream entry); a duplicate's reply.
    func outcome(outboxID: Int64?, duplicate: Bool, reply encoded: [UInt8]? = nil) -> JobOutcome {
        let response = encoded ?? reply(duplicate: duplicate)
        guard !duplicate else { return JobOutcome(reply: response) }
        return JobOutcome(reply: response, cacheMutations: TradeStore.eventMutations(request, keys: keys, streamMaxLength: streamMaxLength),
                          outboxIDs: outboxID.map { [$0] } ?? [])
    }

    func reply(duplicate: Bool) -> [UInt8] {
        PublishTradeEventResponse(duplicate: duplicate, eventID: request.tradeID).encodedPayload()
    }
}
