import EngineStoreWire
import LibPQ

/// PublishTradeEvent: a durable event row guarded by the exchange's trade id; a new event sets the
/// 24 h ingest guard and goes onto the trade stream with `event_id` = trade id. A repeat is
/// acknowledged with `duplicate = true` and publishes nothing.
struct TradeEventRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.publishTradeEvent] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let skew = context.configuration.maxClockSkewMs
        var r = try PublishTradeEventRequest.decodeRequest(payload)
        try Validate.identifier(r.idempotencyKey, "idempotency_key")
        try Validate.keyPart(r.tradeID, "trade_id")
        try Validate.keyPart(r.modelID, "model_id")
        r.symbol = try Validate.symbol(r.symbol)
        try Validate.identifier(r.kind, "kind", maxBytes: 32)
        try Validate.positive(r.price, "price")
        try Validate.positive(r.size, "size")
        try Validate.finite(r.fee, "fee")
        try Validate.timestampMs(r.timestampMs, "timestamp_ms", maxSkewMs: skew)
        try Validate.json(r.payloadJSON, "payload_json")
        context.postgres.submit(IdempotentWrite(
            key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
            body: TradeEventBody(request: r, keys: context.keys, streamMaxLength: context.configuration.streamMaxLength),
            reply: reply))
    }
}

private let insertEvent = Statement(name: "trade_event_insert", sql: """
    INSERT INTO engine_store_trade_events (trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
    ON CONFLICT (trade_id) DO NOTHING RETURNING 1
    """)

struct TradeEventBody: WriteBody {
    let request: PublishTradeEventRequest
    let keys: CacheKeys
    let streamMaxLength: Int

    var lockKeys: [String] { [LockOrder.tradeEvent(request.tradeID)] }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        let inserted = try session.run(insertEvent, [
            r.tradeID, r.modelID, r.symbol, r.kind, r.side?.description, r.price.map(pgText), r.size.map(pgText),
            r.fee.map(pgText), String(r.timestampMs), r.payloadJSON,
        ])
        let duplicate = inserted.rowCount == 0
        let response = PublishTradeEventResponse(duplicate: duplicate, eventID: r.tradeID).encodedPayload()
        guard !duplicate else { return JobOutcome(reply: response) }
        return JobOutcome(reply: response, cacheMutations: Self.cacheMutations(r, keys: keys, streamMaxLength: streamMaxLength),
                          outboxIDs: try Outbox.record(session, [.tradeEvent(tradeID: r.tradeID)]))
    }

    /// The ingest guard and the `trade_event` stream entry (event_id = trade id, for consumer dedupe).
    static func cacheMutations(_ r: PublishTradeEventRequest, keys: CacheKeys, streamMaxLength: Int) -> [CacheMutation] {
        var data = JSONObjectWriter()
        data.string("trade_id", r.tradeID)
        data.string("model_id", r.modelID)
        data.string("symbol", r.symbol)
        data.string("kind", r.kind)
        data.string("side", r.side?.description)
        data.number("price", r.price)
        data.number("size", r.size)
        data.number("fee", r.fee)
        data.int("ts_ms", r.timestampMs)
        data.raw("payload", r.payloadJSON)
        return [
            .set(key: keys.ingestGuard(tradeID: r.tradeID), value: "1", ttlSeconds: 86_400),
            .streamAdd(key: keys.tradeStream, maxLength: streamMaxLength, fields: [
                ("event_id", r.tradeID), ("type", "trade_event"), ("kind", r.kind), ("model_id", r.modelID),
                ("symbol", r.symbol), ("ts_ms", String(r.timestampMs)), ("data", data.finish()),
            ]),
        ]
    }
}
