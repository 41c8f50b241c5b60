import EngineStoreClient
import EngineStoreWire
import Foundation
import Testing

/// RecordConversation (proto-spec §10.17): nof0's conversation rows and `nof0:conversations:<model>`.
@Suite struct ConversationTests {
    static let t0: Int64 = 1_764_201_600_000

    func request(_ model: String, _ n: Int, key: String = UUID().uuidString, response: String? = "ok") -> RecordConversationRequest {
        RecordConversationRequest(idempotencyKey: key, modelID: model, prompt: "prompt \(n)", response: response.map { "\($0) \(n)" },
                                  promptTokens: 100, completionTokens: 20, modelName: "gpt-5", timestampMs: Self.t0 + Int64(n),
                                  topic: "decision")
    }

    func object(_ text: String?) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data((text ?? "").utf8)) as? [String: Any])
    }

    @Test func writesNof0RowsAndTheMessageList() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let pg = try s.postgres()
        let redis = try s.redis()
        let first = try await client.recordConversation(request("cv", 1))
        #expect(first.timestampMs == Self.t0 + 1)
        let conv = try pg.execParams("SELECT model_id, topic FROM conversations WHERE id = $1", [String(first.conversationID)])
        #expect(conv.string(0, 0) == "cv" && conv.string(0, 1) == "decision")
        let msgs = try pg.execParams("""
            SELECT role, content, ts_ms, metadata->>'model', metadata->>'prompt_tokens', metadata->>'completion_tokens',
                   metadata->>'total_tokens', (metadata->>'conversationId')::bigint
            FROM conversation_messages WHERE conversation_id = $1 ORDER BY id
            """, [String(first.conversationID)])
        #expect(msgs.rowCount == 2)
        #expect(msgs.string(0, 0) == "system" && msgs.string(0, 1) == "prompt 1" && msgs.int(0, 2) == Self.t0 + 1)
        #expect(msgs.string(1, 0) == "assistant" && msgs.string(1, 1) == "ok 1")
        #expect(msgs.string(0, 3) == "gpt-5" && msgs.string(0, 4) == "100" && msgs.string(0, 6) == "120" && msgs.string(0, 5) == nil)
        #expect(msgs.string(1, 5) == "20" && msgs.string(1, 4) == nil && msgs.int(1, 7) == first.conversationID)

        // The first write finds no list: the relay builds it from Postgres. Then each write merges.
        let key = s.namespace + "conversations:cv"
        #expect(try await eventually { try redis.command(["LLEN", key]).integer == 2 })
        let noResponse = try await client.recordConversation(request("cv", 2, response: nil))
        #expect(try pg.execParams("SELECT count(*) FROM conversation_messages WHERE conversation_id = $1",
                                  [String(noResponse.conversationID)]).int(0, 0) == 1)
        for n in 3...25 { _ = try await client.recordConversation(request("cv", n)) }
        // The list is full from the 20th call on; the last call's messages reach it after its reply.
        #expect(try await eventually {
            try redis.command(["LLEN", key]).integer == 40
                && (try? object(redis.command(["LINDEX", key, "0"]).text))?["content"] as? String == "ok 25"
        })
        let list = try redis.command(["LRANGE", key, "0", "-1"]).array?.compactMap(\.text) ?? []
        let head = try object(list.first)
        #expect(head["role"] as? String == "assistant" && head["content"] as? String == "ok 25")
        #expect((head["ts"] as? NSNumber)?.int64Value == Self.t0 + 25)
        #expect(try object(list[1])["content"] as? String == "prompt 25")
        let ids = try list.map { try (object($0)["conversation_id"] as? NSNumber)?.int64Value ?? 0 }
        #expect(ids == ids.sorted(by: >))
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["cv"])).differences.isEmpty)

        // Dropped, then Hydrate: the same list, rebuilt from Postgres.
        _ = try redis.command(["DEL", key])
        _ = try await client.hydrate(HydrateRequest(models: ["cv"]))
        #expect(try redis.command(["LRANGE", key, "0", "-1"]).array?.compactMap(\.text) == list)
        // A corrupted entry is reported, and repaired from Postgres.
        _ = try redis.command(["LSET", key, "3", #"{"conversation_id":999999,"id":999999,"role":"system","content":"x","ts":1}"#])
        let check = try await client.checkConsistency(CheckConsistencyRequest(models: ["cv"], repair: true))
        #expect(check.differences.map(\.kind) == ["conversations_cache"])
        #expect(try redis.command(["LRANGE", key, "0", "-1"]).array?.compactMap(\.text) == list)
        await client.close()
        await s.stop()
    }

    /// Concurrent writes reach Redis in any order (two workers, the relay): the list still ends as the
    /// newest 40 messages Postgres has, in order.
    @Test func concurrentWritesEndAsTheNewestMessages() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.recordConversation(request("cc", 0))
        let key = s.namespace + "conversations:cc"
        let redis = try s.redis()
        #expect(try await eventually { try redis.command(["LLEN", key]).integer == 2 })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 1...60 { group.addTask { _ = try await client.recordConversation(self.request("cc", n)) } }
            try await group.waitForAll()
        }
        let pg = try s.postgres()
        let newest = try pg.exec("""
            SELECT m.id FROM conversation_messages m JOIN conversations c ON c.id = m.conversation_id
            WHERE c.model_id = 'cc' ORDER BY m.conversation_id DESC, m.id DESC LIMIT 40
            """)
        let expected = (0..<newest.rowCount).compactMap { newest.int($0, 0) }
        #expect(try await eventually {
            let list = try redis.command(["LRANGE", key, "0", "-1"]).array?.compactMap(\.text) ?? []
            return try list.map { try (self.object($0)["id"] as? NSNumber)?.int64Value ?? 0 } == expected
        })
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["cc"])).differences.isEmpty)
        await client.close()
        await s.stop()
    }

    @Test func aRetryIsAnsweredFromTheRecordAndWritesNothing() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let pg = try s.postgres()
        let r = request("rp", 1, key: "conv-retry")
        let first = try await client.recordConversation(r)
        let again = try await client.recordConversation(r)
        #expect(again == first)
        #expect(try pg.exec("SELECT count(*) FROM conversations").int(0, 0) == 1)
        #expect(try pg.exec("SELECT count(*) FROM conversation_messages").int(0, 0) == 2)
        await #expect(throws: EngineStoreError.self) { try await client.recordConversation(request("rp", 2, key: "conv-retry")) }
        #expect(try pg.exec("SELECT count(*) FROM conversations").int(0, 0) == 1)
        await client.close()
        await s.stop()
    }

    @Test func invalidRequestsWriteNothing() async throws {
        // The 2 MiB write below is no timing test: on a starved CI host (a debug build, every suite at
        // once) it once outlasted the 2 s statement watchdog, which dropped the connection.
        let s = try await RunningServer.start { $0.postgresTimeoutMs = 30_000 }
        let client = s.client()
        let pg = try s.postgres()
        let big = String(repeating: "x", count: (1 << 20) + 1)
        let name = String(repeating: "n", count: 257)
        let cases: [(RecordConversationRequest, String)] = [
            (RecordConversationRequest(modelID: "bad", prompt: ""), "prompt"),
            (RecordConversationRequest(modelID: "bad", prompt: big), "prompt"),
            (RecordConversationRequest(modelID: "bad", prompt: "p", response: big), "response"),
            (RecordConversationRequest(modelID: "bad", prompt: "p", modelName: name), "model_name"),
            (RecordConversationRequest(modelID: "bad", prompt: "p", topic: name), "topic"),
            (RecordConversationRequest(modelID: "a:b", prompt: "p"), "model_id"),
            (RecordConversationRequest(modelID: "bad", prompt: "p\u{0}"), "prompt"),
            (RecordConversationRequest(modelID: "bad", prompt: "p", timestampMs: Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000),
             "timestamp_ms"),
        ]
        for (r, field) in cases {
            do {
                _ = try await client.recordConversation(r)
                Issue.record("accepted an invalid \(field)")
            } catch let e as EngineStoreError {
                #expect(e.code == .invalidArgument && e.field == field, "\(field): \(e)")
            }
        }
        // The largest allowed prompt and response are stored.
        let max = String(repeating: "y", count: 1 << 20)
        _ = try await client.recordConversation(RecordConversationRequest(modelID: "ok", prompt: max, response: max))
        #expect(try pg.exec("SELECT count(*) FROM conversations WHERE model_id = 'bad' OR model_id = 'a:b'").int(0, 0) == 0)
        #expect(try pg.exec("SELECT count(*) FROM conversation_messages").int(0, 0) == 2)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency").int(0, 0) == 1)
        await client.close()
        await s.stop()
    }
}
