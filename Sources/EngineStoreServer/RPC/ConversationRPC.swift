import EngineStoreWire
import LibPQ

/// RecordConversation: one executor -> LLM interaction, written as nof0's executor writes it (one
/// `conversations` row, the prompt and the response as `conversation_messages` with nof0's metadata),
/// plus the message list `nof0:conversations:<model>`.
struct ConversationRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.recordConversation] }

    static let maxTextBytes = 1 << 20

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        guard method == .recordConversation else { throw ServiceError(.unimplemented, "\(method) is not implemented") }
        let r = try RecordConversationRequest.decodeWrite(payload)
        try Validate.keyPart(r.modelID, "model_id")
        guard !r.prompt.isEmpty else { throw .invalid("prompt", "must not be empty") }
        try Validate.text(r.prompt, "prompt", maxBytes: Self.maxTextBytes)
        try Validate.text(r.response, "response", maxBytes: Self.maxTextBytes)
        try Validate.text(r.modelName, "model_name", maxBytes: 256)
        try Validate.text(r.topic, "topic", maxBytes: 256)
        try Validate.timestampMs(r.timestampMs, "timestamp_ms", maxSkewMs: context.configuration.maxClockSkewMs)
        context.submitWrite(r, method, payload: payload,
            body: RecordConversationBody(request: r, keys: context.keys, ttl: context.configuration.ttl.long), reply: reply)
    }
}

/// One statement writes the conversation and its messages (ConversationStore.Insert).
struct RecordConversationBody: WriteBody {
    let request: RecordConversationRequest
    let keys: CacheKeys
    let ttl: Int

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        let rows = try session.rows(ConversationStore.Insert(request: r))
        let response = RecordConversationResponse(conversationID: rows.first?.conversationID ?? 0, timestampMs: rows.first?.tsMs ?? 0)
        return JobOutcome(reply: response.encodedPayload(),
                          cacheMutations: [ConversationStore.merge(ConversationStore.written(rows, r), model: r.modelID,
                                                                   keys: keys, mode: .existing, ttl: ttl)],
                          outboxIDs: try Outbox.record(session, [.conversations(model: r.modelID)]))
    }
}

extension CacheScripts {
    /// KEYS list; ARGV ttl, max, mode, n, then n message documents, then message ids to drop. The
    /// list becomes the newest `max` of (list ∪ items) by conversation id, then id, both descending,
    /// without duplicate ids. Messages never change, so the merge is commutative and idempotent: any
    /// order of writes, relays and repairs ends with the same list. 0 when the list is missing and
    /// mode is 'existing'. Items newer than the head are pushed without reading the list.
    static let conversationsMerge = """
        local exists = redis.call('EXISTS', KEYS[1]) == 1
        if not exists and ARGV[3] == 'existing' then return 0 end
        local max = tonumber(ARGV[2])
        local function entry(s)
          local c, i = string.match(s, '^{"conversation_id":(%d+),"id":(%d+),')
          if c then return { c = tonumber(c), i = tonumber(i), id = i, s = s } end
          return nil
        end
        local function first(a, b)
          if a.c ~= b.c then return a.c > b.c end
          return a.i > b.i
        end
        local n = tonumber(ARGV[4])
        local seen = {}
        for k = 5 + n, #ARGV do seen[ARGV[k]] = true end
        local new = {}
        for k = 5, 4 + n do
          local e = entry(ARGV[k])
          if e and not seen[e.id] then seen[e.id] = true; new[#new + 1] = e end
        end
        table.sort(new, first)
        local head = exists and entry(redis.call('LINDEX', KEYS[1], 0) or '') or nil
        if exists and head and #new > 0 and first(new[#new], head) and n + 4 == #ARGV then
          for k = #new, 1, -1 do redis.call('LPUSH', KEYS[1], new[k].s) end
          redis.call('LTRIM', KEYS[1], 0, max - 1)
          redis.call('EXPIRE', KEYS[1], ARGV[1])
          return 1
        end
        local current = exists and redis.call('LRANGE', KEYS[1], 0, -1) or {}
        local all = new
        for _, s in ipairs(current) do
          local e = entry(s)
          if e and not seen[e.id] then seen[e.id] = true; all[#all + 1] = e end
        end
        table.sort(all, first)
        redis.call('DEL', KEYS[1])
        local keep = math.min(#all, max)
        if keep > 0 then
          local values = {}
          for k = 1, keep do values[k] = all[k].s end
          redis.call('RPUSH', KEYS[1], unpack(values))
          redis.call('EXPIRE', KEYS[1], ARGV[1])
        end
        return 1
        """
}
