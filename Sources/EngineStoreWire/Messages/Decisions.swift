/// RecordDecisionCycle (method 33): one decision cycle of one trader.
public struct RecordDecisionCycleRequest: WireMessage {
    public var idempotencyKey: String
    public var modelID: String
    public var cycleNumber: Int64?
    public var promptDigest: String?
    /// Chain-of-thought text, up to 1 MiB.
    public var cotTrace: String?
    /// JSON array of decisions (objects with symbol, action, confidence, …).
    public var decisionsJSON: String?
    public var success: Bool
    public var errorMessage: String?
    /// When the cycle ran; absent = the server's commit time.
    public var executedAtMs: Int64?

    public init(idempotencyKey: String = "", modelID: String, cycleNumber: Int64? = nil, promptDigest: String? = nil,
                cotTrace: String? = nil, decisionsJSON: String? = nil, success: Bool, errorMessage: String? = nil,
                executedAtMs: Int64? = nil) {
        self.idempotencyKey = idempotencyKey
        self.modelID = modelID
        self.cycleNumber = cycleNumber
        self.promptDigest = promptDigest
        self.cotTrace = cotTrace
        self.decisionsJSON = decisionsJSON
        self.success = success
        self.errorMessage = errorMessage
        self.executedAtMs = executedAtMs
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?, model: String?
        self.init(modelID: "", success: false)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: try r.once(f, "model_id"); model = try f.string("model_id")
            case 3: try r.once(f, "cycle_number"); cycleNumber = try f.int64("cycle_number")
            case 4: try r.once(f, "prompt_digest"); promptDigest = try f.string("prompt_digest")
            case 5: try r.once(f, "cot_trace"); cotTrace = try f.string("cot_trace")
            case 6: try r.once(f, "decisions_json"); decisionsJSON = try f.string("decisions_json")
            case 7: try r.once(f, "success"); success = try f.bool("success")
            case 8: try r.once(f, "error_message"); errorMessage = try f.string("error_message")
            case 9: try r.once(f, "executed_at_ms"); executedAtMs = try f.int64("executed_at_ms")
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        modelID = try required(model, "model_id")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.string(2, modelID)
        w.int(3, cycleNumber)
        w.string(4, promptDigest)
        w.string(5, cotTrace)
        w.string(6, decisionsJSON)
        w.bool(7, success)
        w.string(8, errorMessage)
        w.int(9, executedAtMs)
    }
}

public struct RecordDecisionCycleResponse: WireMessage {
    /// `decision_cycles.id`.
    public var id: Int64
    public var executedAtMs: Int64

    public init(id: Int64, executedAtMs: Int64) {
        self.id = id
        self.executedAtMs = executedAtMs
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(id: 0, executedAtMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "id"); id = try f.int64("id")
            case 2: try r.once(f, "executed_at_ms"); executedAtMs = try f.int64("executed_at_ms")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.int(1, id)
        w.int(2, executedAtMs)
    }
}

/// GetLastDecision (method 37).
public struct GetLastDecisionRequest: WireMessage {
    public var modelID: String
    public init(modelID: String) { self.modelID = modelID }
    public init(from r: inout FieldReader) throws(WireError) {
        var model: String?
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "model_id"); model = try f.string("model_id") }
        }
        modelID = try required(model, "model_id")
    }
    public func encode(into w: inout FieldWriter) { w.string(1, modelID) }
}

/// The decision document of `decision:last` (proto-spec §10.12): taken from the cycle's first decision.
public struct LastDecision: WireMessage {
    public var modelID: String
    public var success: Bool
    public var timestampMs: Int64
    public var symbol: String?
    public var action: String?
    public var confidence: Double?
    public var error: String?
    public var source: ReadSource

    public init(modelID: String, success: Bool, timestampMs: Int64, symbol: String?, action: String?,
                confidence: Double?, error: String?, source: ReadSource) {
        self.modelID = modelID
        self.success = success
        self.timestampMs = timestampMs
        self.symbol = symbol
        self.action = action
        self.confidence = confidence
        self.error = error
        self.source = source
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(modelID: "", success: false, timestampMs: 0, symbol: nil, action: nil, confidence: nil, error: nil, source: .postgres)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); modelID = try f.string("model_id")
            case 2: try r.once(f, "success"); success = try f.bool("success")
            case 3: try r.once(f, "timestamp_ms"); timestampMs = try f.int64("timestamp_ms")
            case 4: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 5: try r.once(f, "action"); action = try f.string("action")
            case 6: try r.once(f, "confidence"); confidence = try f.double("confidence")
            case 7: try r.once(f, "error"); error = try f.string("error")
            case 8: try r.once(f, "source"); source = try f.enumeration("source")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.bool(2, success)
        w.int(3, timestampMs)
        w.string(4, symbol)
        w.string(5, action)
        w.double(6, confidence)
        w.string(7, error)
        w.uint(8, UInt64(source.rawValue))
    }
}
