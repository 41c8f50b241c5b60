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
struct ConversationsDocument: ModelListDocument {
    static let kind = "conversations"

    func key(_ keys: CacheKeys, model: String) -> String { keys.conversations(model: model) }

    func unknown(_ list: [String], _ s: PostgresSession) throws -> [String] { try ConversationStore.unknown(list, s) }

    func merge(_ s: PostgresSession, model: String, drop: [String], _ rebuilder: CacheRebuilder) throws -> CacheMutation {
        ConversationStore.merge(try s.rows(ConversationStore.Recent(model: model)), model: model, keys: rebuilder.keys, mode: .build,
                                ttl: rebuilder.ttl.long, drop: drop)
    }

    func expected(_ s: PostgresSession, model: String) throws -> [String] {
        try s.rows(ConversationStore.Recent(model: model)).map(\.json)
    }

    func matches(_ cached: [String], _ expected: [String]) -> Bool { cached == expected }

    func describe(_ list: [String]) -> String { "\(list.count) messages" }
}
