import EngineStoreWire
import Hiredis
import LibPQ

extension CacheKeys {
    func conversations(model: String) -> String { namespace + "conversations:" + model }
}

extension OutboxIntent {
    /// The message list `conversations:<model>`.
    static func conversations(model: String) -> OutboxIntent { ConversationsDocument.intent(model) }
}

/// `conversations:<model>`, the newest messages of a model, newest first (RecordConversation).
struct ConversationsDocument: CachedDocumentKind {
    static let kind = "conversations"
    var perModel: Bool { true }

    /// The newest messages merged into the list (built if missing); `drop`: cached message ids
    /// Postgres does not have (repair, Hydrate).
    func merge(_ s: PostgresSession, model: String, drop: [String] = [], _ rebuilder: CacheRebuilder) throws -> CacheMutation {
        ConversationStore.merge(try s.rows(ConversationStore.Recent(model: model)), model: model, keys: rebuilder.keys, mode: .build,
                                ttl: rebuilder.ttl.long, drop: drop)
    }

    func rebuild(_ s: PostgresSession, subject: String, ref: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        [try merge(s, model: subject, rebuilder)]
    }

    func hydrate(_ s: PostgresSession, _ r: RedisConnection, subject: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        [try merge(s, model: subject, drop: try ConversationStore.unknown(cached(r, subject, rebuilder), s), rebuilder)]
    }

    /// When the list exists it must be the newest messages, newest first.
    func check(_ s: PostgresSession, _ r: RedisConnection, subject model: String, _ rebuilder: CacheRebuilder,
               _ tally: inout ConsistencyTally) throws {
        let messages = try cached(r, model, rebuilder)
        guard !messages.isEmpty else { return }
        tally.checked += 1
        let expected = try s.rows(ConversationStore.Recent(model: model)).map(\.json)
        if messages != expected {
            tally.differences.append(Inconsistency(kind: "conversations_cache", key: rebuilder.keys.conversations(model: model),
                                                   databaseValue: "\(expected.count) messages",
                                                   otherValue: "\(messages.count) messages", repaired: tally.repair))
            if tally.repair {
                tally.repairs.append(try merge(s, model: model, drop: try ConversationStore.unknown(messages, s), rebuilder))
            }
        }
    }

    private func cached(_ r: RedisConnection, _ model: String, _ rebuilder: CacheRebuilder) throws -> [String] {
        (try r.command(["LRANGE", rebuilder.keys.conversations(model: model), "0", "-1"]).array ?? []).compactMap(\.text)
    }
}
