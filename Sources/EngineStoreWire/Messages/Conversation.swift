/// RecordConversation (method 39): one executor -> LLM interaction (nof0's ConversationRecord).
public struct RecordConversationRequest: WireMessage {
    public var idempotencyKey: String
    public var modelID: String
    /// Up to 1 MiB; stored as the 'user' message.
    public var prompt: String
    /// Up to 1 MiB; stored as the 'assistant' message. Absent (or empty) = no assistant message.
    public var response: String?
    public var promptTokens: UInt32?
    public var completionTokens: UInt32?
    /// Absent = promptTokens + completionTokens.
    public var totalTokens: UInt32?
    /// The LLM's name (nof0's ModelName).
    public var modelName: String?
    /// Absent = the server's transaction time.
    public var timestampMs: Int64?
    public var topic: String?

    public init(idempotencyKey: String = "", modelID: String, prompt: String, response: String? = nil,
                promptTokens: UInt32? = nil, completionTokens: UInt32? = nil, totalTokens: UInt32? = nil,
                modelName: String? = nil, timestampMs: Int64? = nil, topic: String? = nil) {
        self.idempotencyKey = idempotencyKey
        self.modelID = modelID
        self.prompt = prompt
        self.response = response
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.modelName = modelName
        self.timestampMs = timestampMs
        self.topic = topic
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?, model: String?, text: String?
        self.init(modelID: "", prompt: "")
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: try r.once(f, "model_id"); model = try f.string("model_id")
            case 3: try r.once(f, "prompt"); text = try f.string("prompt")
            case 4: try r.once(f, "response"); response = try f.string("response")
            case 5: try r.once(f, "prompt_tokens"); promptTokens = try f.uint32("prompt_tokens")
            case 6: try r.once(f, "completion_tokens"); completionTokens = try f.uint32("completion_tokens")
            case 7: try r.once(f, "total_tokens"); totalTokens = try f.uint32("total_tokens")
            case 8: try r.once(f, "model_name"); modelName = try f.string("model_name")
            case 9: try r.once(f, "timestamp_ms"); timestampMs = try f.int64("timestamp_ms")
            case 10: try r.once(f, "topic"); topic = try f.string("topic")
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        modelID = try required(model, "model_id")
        prompt = try required(text, "prompt")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.string(2, modelID)
        w.string(3, prompt)
        w.string(4, response)
        w.uint(5, promptTokens.map(UInt64.init))
        w.uint(6, completionTokens.map(UInt64.init))
        w.uint(7, totalTokens.map(UInt64.init))
        w.string(8, modelName)
        w.int(9, timestampMs)
        w.string(10, topic)
    }
}

public struct RecordConversationResponse: WireMessage {
    /// `conversations.id` of the new row.
    public var conversationID: Int64
    /// The messages' `ts_ms` as stored.
    public var timestampMs: Int64

    public init(conversationID: Int64, timestampMs: Int64) {
        self.conversationID = conversationID
        self.timestampMs = timestampMs
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var id: Int64?
        self.init(conversationID: 0, timestampMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "conversation_id"); id = try f.int64("conversation_id")
            case 2: try r.once(f, "timestamp_ms"); timestampMs = try f.int64("timestamp_ms")
            default: break
            }
        }
        conversationID = try required(id, "conversation_id")
    }

    public func encode(into w: inout FieldWriter) {
        w.int(1, conversationID)
        w.int(2, timestampMs)
    }
}
