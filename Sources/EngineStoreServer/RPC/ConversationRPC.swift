import EngineStoreWire
import LibPQ

/// RecordConversation: one executor -> LLM interaction, written as nof0's executor writes it (one
/// `conversations` row, the prompt and the response as `conversation_messages` with nof0's metadata),
/// plus the message list `nof0:conversations:<model>`.
struct ConversationRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.recordConversation] }

    static let maxTextBytes = 1 << 20
    /// Messages kept in the cached list: nof0 keeps its newest 20 conversations, each a prompt and a response.
    static let cachedMessages = 40

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        guard method == .recordConversation else { throw ServiceError(.unimplemented, "\(method) is not implemented") }
        let r = try RecordConversationRequest.decodeRequest(payload)
        try Validate.identifier(r.idempotencyKey, "idempotency_key")
        try Validate.keyPart(r.modelID, "model_id")
        guard !r.prompt.isEmpty else { throw .invalid("prompt", "must not be empty") }
        try Validate.text(r.prompt, "prompt", maxBytes: Self.maxTextBytes)
        try Validate.text(r.response, "response", maxBytes: Self.maxTextBytes)
        try Validate.text(r.modelName, "model_name", maxBytes: 256)
        try Validate.text(r.topic, "topic", maxBytes: 256)
        try Validate.timestampMs(r.timestampMs, "timestamp_ms", maxSkewMs: context.configuration.maxClockSkewMs)
        let key = context.keys.conversations(model: r.modelID)
        context.postgres.submit(IdempotentWrite(
            key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
            body: RecordConversationBody(request: r, key: key, ttl: context.configuration.ttl.long), reply: reply))
    }

    /// The message document: ids first, in this order, so the merge script reads them without
    /// decoding a (possibly large) content. `ts` is nof0's name for the message time.
    static func json(conversationID: Int64, id: Int64, role: String, content: String, ts: Int64?) -> String {
        var j = JSONObjectWriter()
        j.int("conversation_id", conversationID)
        j.int("id", id)
        j.string("role", role)
        j.string("content", content)
        j.int("ts", ts)
        return j.finish()
    }
}

extension CacheKeys {
    func conversations(model: String) -> String { namespace + "conversations:" + model }
}

/// One statement: the conversation, then its messages in order (prompt first, so ids follow the
/// conversation), with the metadata nof0's executor writes.
private let insertConversation = Statement(name: "conversation_insert", sql: """
    WITH c AS (INSERT INTO conversations (model_id, topic) VALUES ($1, NULLIF($2, '')) RETURNING id),
    t AS (SELECT COALESCE($3::bigint, (extract(epoch FROM now()) * 1000)::bigint) AS ts),
    m AS (
        INSERT INTO conversation_messages (conversation_id, role, content, ts_ms, metadata)
        SELECT c.id, v.role, v.content, t.ts, v.meta || jsonb_build_object('conversationId', c.id)
        FROM c, t, (VALUES
            (1, 'user', $4::text, jsonb_build_object('model', $6::text, 'prompt_tokens', $7::bigint, 'total_tokens', $9::bigint)),
            (2, 'assistant', NULLIF($5::text, ''),
             jsonb_build_object('model', $6::text, 'completion_tokens', $8::bigint, 'total_tokens', $9::bigint))
        ) AS v(n, role, content, meta)
        WHERE v.content IS NOT NULL
        ORDER BY v.n
        RETURNING id, role
    )
    SELECT c.id, t.ts, m.id, m.role FROM c, t, m ORDER BY m.id
    """)

struct RecordConversationBody: WriteBody {
    let request: RecordConversationRequest
    let key: String
    let ttl: Int

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        let prompt = UInt64(r.promptTokens ?? 0), completion = UInt64(r.completionTokens ?? 0)
        let total = r.totalTokens.map(UInt64.init) ?? prompt + completion
        let rows = try session.run(insertConversation, [
            r.modelID, r.topic, r.timestampMs.map(String.init), r.prompt, r.response, r.modelName ?? "",
            String(prompt), String(completion), String(total),
        ])
        let conversationID = rows.int(0, 0) ?? 0, ts = rows.int(0, 1) ?? 0
        let items = (0..<rows.rowCount).map { i in
            let role = rows.string(i, 3) ?? ""
            return ConversationRPC.json(conversationID: conversationID, id: rows.int(i, 2) ?? 0, role: role,
                                        content: role == "user" ? r.prompt : r.response ?? "", ts: ts)
        }
        return JobOutcome(reply: RecordConversationResponse(conversationID: conversationID, timestampMs: ts).encodedPayload(),
                          cacheMutations: [.conversationsMerge(key: key, items: items, maxLength: ConversationRPC.cachedMessages,
                                                               mode: .existing, ttlSeconds: ttl)],
                          outboxIDs: try Outbox.record(session, [.conversations(model: r.modelID)]))
    }
}

// MARK: rebuilt from Postgres (relay, Hydrate, CheckConsistency)

/// The newest messages of the model's newest conversations that have messages: every one of the
/// newest N messages (by conversation id, then id) is in those N conversations.
private let recentMessages = Statement(name: "rebuild_conversations", sql: """
    SELECT m.conversation_id, m.id, m.role, m.content, m.ts_ms
    FROM (SELECT c.id FROM conversations c
          WHERE c.model_id = $1 AND EXISTS (SELECT 1 FROM conversation_messages x WHERE x.conversation_id = c.id)
          ORDER BY c.id DESC LIMIT $2) AS c
    JOIN conversation_messages m ON m.conversation_id = c.id
    ORDER BY m.conversation_id DESC, m.id DESC LIMIT $2
    """)

private let existingMessages = Statement(name: "rebuild_existing_messages", sql: """
    SELECT id FROM conversation_messages WHERE id = ANY($1::bigint[])
    """)

extension CacheRebuilder {
    func conversations(_ s: PostgresSession, model: String) throws -> [String] {
        let r = try s.run(recentMessages, [model, String(ConversationRPC.cachedMessages)])
        return (0..<r.rowCount).map { i in
            ConversationRPC.json(conversationID: r.int(i, 0) ?? 0, id: r.int(i, 1) ?? 0, role: r.string(i, 2) ?? "",
                                 content: r.string(i, 3) ?? "", ts: r.int(i, 4))
        }
    }

    /// The newest messages merged into the list (built if missing); `drop`: cached message ids
    /// Postgres does not have (repair).
    func conversationsMerge(_ s: PostgresSession, model: String, drop: [String] = []) throws -> CacheMutation {
        .conversationsMerge(key: keys.conversations(model: model), items: try conversations(s, model: model),
                            maxLength: ConversationRPC.cachedMessages, mode: .build, ttlSeconds: ttl.long, drop: drop)
    }

    /// Ids of cached messages that Postgres does not have.
    static func unknownMessages(_ list: [String], _ s: PostgresSession) throws -> [String] {
        let ids = list.compactMap(CacheScripts.messageID)
        guard !ids.isEmpty else { return [] }
        let found = try s.run(existingMessages, [pgArray(ids)])
        let known = Set((0..<found.rowCount).compactMap { found.string($0, 0) })
        return ids.filter { !known.contains($0) }
    }
}

extension CacheScripts {
    /// The `id` of a message document (see `ConversationRPC.json`), as the merge script reads it.
    static func messageID(_ document: String) -> String? {
        guard document.hasPrefix(#"{"conversation_id":"#) else { return nil }
        let rest = document.utf8.drop(while: { $0 != UInt8(ascii: ",") }).dropFirst()
        guard rest.starts(with: #""id":"#.utf8) else { return nil }
        let digits = rest.dropFirst(5).prefix(while: { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        return digits.isEmpty ? nil : String(decoding: digits, as: UTF8.self)
    }

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
