import EngineStoreWire
import LibPQ

/// Conversations and their messages (SQL/conversations.sql) and the `conversations:<model>` list
/// of message documents.
enum ConversationStore {
    /// Messages kept in the cached list: nof0 keeps its newest 20 conversations, each a prompt and a response.
    static let cachedMessages = 40

    /// One message, as the document holds it.
    struct Message: Equatable {
        var conversationID: Int64
        var id: Int64
        var role: String
        var content: String
        var ts: Int64?

        /// The message document (proto-spec §10.12): ids first, in this order, so the merge script
        /// reads them without decoding a (possibly large) content. `ts` is nof0's name for the
        /// message time. The only encoder of it.
        var json: String {
            var j = JSONObjectWriter()
            j.int("conversation_id", conversationID)
            j.int("id", id)
            j.string("role", role)
            j.string("content", content)
            j.int("ts", ts)
            return j.finish()
        }
    }

    /// The `id` of a message document, read as the merge script reads it; nil when it is not one.
    static func messageID(document: String) -> String? {
        guard document.hasPrefix(#"{"conversation_id":"#) else { return nil }
        let rest = document.utf8.drop(while: { $0 != UInt8(ascii: ",") }).dropFirst()
        guard rest.starts(with: #""id":"#.utf8) else { return nil }
        let digits = rest.dropFirst(5).prefix(while: { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        return digits.isEmpty ? nil : String(decoding: digits, as: UTF8.self)
    }

    /// One row per message written: the conversation's id and time, the message's id and role.
    struct Insert: PGStatement {
        struct Row {
            var conversationID: Int64
            var tsMs: Int64
            var messageID: Int64
            var role: String
        }
        static let sql = SQLText.conversationInsert
        let request: RecordConversationRequest
        var bindings: [String?] {
            let r = request
            let prompt = UInt64(r.promptTokens ?? 0), completion = UInt64(r.completionTokens ?? 0)
            let total = r.totalTokens.map(UInt64.init) ?? prompt + completion
            return [r.modelID, r.topic, r.timestampMs.map(String.init), r.prompt, r.response, r.modelName ?? "",
                    String(prompt), String(completion), String(total)]
        }
        static func decode(_ r: PGRow) -> Row {
            Row(conversationID: r.int("conversation_id") ?? 0, tsMs: r.int("ts_ms") ?? 0,
                messageID: r.int("message_id") ?? 0, role: r.string("role") ?? "")
        }
    }

    /// The model's newest messages, newest first (the list as it should be).
    struct Recent: PGStatement {
        static let sql = SQLText.conversationMessagesRecent
        let model: String
        var limit = ConversationStore.cachedMessages
        var bindings: [String?] { [model, String(limit)] }
        static func decode(_ r: PGRow) -> Message {
            Message(conversationID: r.int("conversation_id") ?? 0, id: r.int("id") ?? 0, role: r.string("role") ?? "",
                    content: r.string("content") ?? "", ts: r.int("ts_ms"))
        }
    }

    /// Which of `ids` are conversation_messages rows.
    struct Existing: PGStatement {
        static let sql = SQLText.conversationMessagesExisting
        let ids: [String]
        var bindings: [String?] { [pgArray(ids)] }
        static func decode(_ r: PGRow) -> String { r.string("id") ?? "" }
    }

    /// The messages just written, as documents (their content is the request's, not read back).
    static func written(_ rows: [Insert.Row], _ r: RecordConversationRequest) -> [Message] {
        rows.map { Message(conversationID: $0.conversationID, id: $0.messageID, role: $0.role,
                           content: $0.role == "assistant" ? r.response ?? "" : r.prompt, ts: $0.tsMs) }
    }

    /// `messages` merged into the model's list; `drop`: cached message ids Postgres does not have (repair).
    static func merge(_ messages: [Message], model: String, keys: CacheKeys, mode: CacheMutation.ListMode, ttl: Int,
                      drop: [String] = []) -> CacheMutation {
        .conversationsMerge(key: keys.conversations(model: model), items: messages.map(\.json), maxLength: cachedMessages,
                            mode: mode, ttlSeconds: ttl, drop: drop)
    }

    /// Ids of cached messages that Postgres does not have (they can only be removed by name: the
    /// list is otherwise merged, never replaced).
    static func unknown(_ list: [String], _ s: PostgresSession) throws -> [String] {
        let ids = list.compactMap { messageID(document: $0) }
        guard !ids.isEmpty else { return [] }
        let known = Set(try s.rows(Existing(ids: ids)))
        return ids.filter { !known.contains($0) }
    }
}
