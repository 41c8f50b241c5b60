import Testing
import Hiredis
@testable import EngineStoreServer

/// Outbox rows already in Postgres must decode after a release, and intents must encode as before.
@Suite struct OutboxIntentTests {
    @Test func rowsRoundTripByteForByte() {
        let rows: [(String, String, String)] = [
            ("position", "m-1", "BTC"), ("recent_trades", "m-1", ""), ("close_event", "42", ""),
            ("trade_event", "t-9", ""), ("decision", "m-1", ""), ("analytics", "m-1", ""),
            ("leaderboard", "", ""), ("trader_state", "trader-1", ""), ("conversations", "m-1", ""),
            ("intents", "", "position\tm-1\tBTC\nrecent_trades\tm-1\t"),
        ]
        for (kind, subject, ref) in rows {
            let intent = OutboxIntent(kind: kind, subject: subject, ref: ref)
            #expect(intent != nil, "\(kind)")
            #expect(intent.map { [$0.row.kind, $0.row.subject, $0.row.ref] } == [kind, subject, ref])
        }
    }

    @Test func descriptorKindsEncodeAsBefore() {
        let row = OutboxIntent.traderState(trader: "t1").row
        #expect([row.kind, row.subject, row.ref] == ["trader_state", "t1", ""])
        #expect(OutboxIntent(kind: "trader_state", subject: "t1", ref: "") == .traderState(trader: "t1"))
        let conversations = OutboxIntent.conversations(model: "m-1").row
        #expect([conversations.kind, conversations.subject, conversations.ref] == ["conversations", "m-1", ""])
    }

    /// A shared row stands for its key intents; a line this version cannot read (an unknown kind, a
    /// stream event, which never shares a row, or a nested list) is left out, not the whole row.
    @Test func anIntentsRowStandsForEachOfItsIntents() {
        let ref = "position\tm-1\t\nno_such_kind\tx\t\ntrade_event\tt-1\t\nintents\t\t\nrecent_trades\tm-2\t\nposition\tm-3"
        let intent = OutboxIntent(kind: "intents", subject: "", ref: ref)
        #expect(intent?.parts == [.position(model: "m-1", symbol: ""), .recentTrades(model: "m-2")])
        #expect(OutboxIntent.position(model: "m", symbol: "A").parts == [.position(model: "m", symbol: "A")])
    }

    @Test func unknownKindIsNil() {
        #expect(OutboxIntent(kind: "no_such_kind", subject: "x", ref: "") == nil)
    }

    @Test func registryKindsAreUnique() {
        let names = CachedDocuments.all.map(\.outboxKind)
        #expect(Set(names).count == names.count)
    }
}

/// Which outbox rows a write's replies settle (`CacheWriteOutcome.of`, used by the direct path and
/// the relay alike).
@Suite struct CacheWriteOutcomeTests {
    let guardKey = CacheMutation.set(key: "ingest:trade:t", value: "1", ttlSeconds: 60)
    let entry = CacheMutation.streamAdd(key: "trades:stream", maxLength: 10, fields: [("event_id", "t")])
    let hashField = CacheMutation.positionSet(key: "positions:m", versionKey: "v", field: "BTC", value: "{}", version: "1", ttlSeconds: 60)

    @Test func aTakenStreamEntrySettlesItsRowWhateverElseWasRefused() {
        let id = RedisReply.string(Array("1-0".utf8))
        #expect(CacheWriteOutcome.of([(guardKey, .error("OOM")), (entry, id)]) == .applied)
        #expect(CacheWriteOutcome.of([(guardKey, .status("OK")), (entry, .error("OOM"))]) == .refused("OOM"))
        #expect(CacheWriteOutcome.of([(entry, id)]) == .applied)
    }

    @Test func keysAreRefusedByAnyErrorAndDeclinedByAConditionalZero() {
        #expect(CacheWriteOutcome.of([(hashField, .integer(0)), (guardKey, .status("OK"))]) == .declined)
        #expect(CacheWriteOutcome.of([(hashField, .integer(0)), (guardKey, .error("READONLY"))]) == .refused("READONLY"))
        #expect(CacheWriteOutcome.of([(guardKey, .integer(0))]) == .applied)  // not conditional
        #expect(CacheWriteOutcome.of([(hashField, nil)]) == .refused("no reply"))
        #expect(CacheWriteOutcome.of([]) == .applied)  // a write with rows and nothing to send
    }
}

/// The cache writer's writes for a committed batch (`PostgresPool.cacheWrites`).
@Suite struct CacheWritesTests {
    func outcome(_ field: String, ids: [Int64], event: Bool = false) -> JobOutcome {
        var o = JobOutcome(reply: [], cacheMutations: [.set(key: field, value: "1", ttlSeconds: 60)], outboxIDs: ids)
        if event { o.independentCacheWork = [([.set(key: field + "-event", value: "1", ttlSeconds: 60)], ids.map { $0 + 100 })] }
        return o
    }

    /// Requests that share their outbox rows become one write, in the place of the first, so a row goes
    /// only when Redis took all of them. Rows of their own, or none, keep writes apart; stream entries
    /// stay where they were.
    @Test func outcomesSharingTheirRowsBecomeOneWrite() {
        let writes = PostgresPool.cacheWrites([
            outcome("a", ids: [7]), outcome("b", ids: [7]), outcome("c", ids: [7]),
            outcome("d", ids: [8]), outcome("e", ids: []), outcome("f", ids: []),
            outcome("g", ids: [9], event: true), outcome("h", ids: [9], event: true), outcome("i", ids: [9]),
        ])
        #expect(writes.map { $0.mutations.map(\.key) } == [["a", "b", "c"], ["d"], ["e"], ["f"], ["g", "h", "i"], ["g-event"], ["h-event"]])
        #expect(writes.map(\.outboxIDs) == [[7], [8], [], [], [9], [109], [109]])
    }

    /// A shared call's saves of one model go to Redis as one script call, in the place of the first.
    @Test func aWritesPositionFieldsOfOneHashBecomeOneScriptCall() {
        func save(_ model: String, _ symbol: String) -> JobOutcome {
            JobOutcome(reply: [], cacheMutations: [.positionSet(key: "positions:" + model, versionKey: "positions:\(model):v",
                                                                field: symbol, value: "{}", version: "1", ttlSeconds: 60)], outboxIDs: [7])
        }
        let writes = PostgresPool.cacheWrites([save("a", "BTC"), save("b", "BTC"), save("a", "ETH"), save("a", "SOL")])
        #expect(writes.count == 1)
        #expect(writes[0].mutations.map { $0.commands[0][5...].joined(separator: " ") } == ["60 BTC 1 {} ETH 1 {} SOL 1 {}", "60 BTC 1 {}"])
        #expect(writes[0].mutations.map(\.key) == ["positions:a", "positions:b"])
    }
}

/// `CacheMutation.coalesced`: which position writes may share a script call.
@Suite struct PositionCoalescingTests {
    func set(_ key: String, _ field: String, version: String = "1", ttl: Int = 60) -> CacheMutation {
        .positionSet(key: key, versionKey: key + ":v", field: field, value: "{\"v\":\(version)}", version: version, ttlSeconds: ttl)
    }
    /// Each call's key and its fields, in order.
    func calls(_ list: [CacheMutation]) -> [String] {
        CacheMutation.coalesced(list).map { m in
            switch m {
            case .positionSet(let key, _, let field, _, _, _): "\(key) \(field)"
            case .positionSets(let key, _, let fields, _): "\(key) " + fields.map(\.field).joined(separator: ",")
            default: "\(m.key) other"
            }
        }
    }

    @Test func fieldsOfOneHashShareACallUnlessSomethingComesBetween() {
        // Other hashes in between do not stop it; a second write of a field, another kind of write to
        // the hash, or another TTL starts a new call after it.
        #expect(calls([set("p:a", "BTC"), set("p:b", "BTC"), set("p:a", "ETH")]) == ["p:a BTC,ETH", "p:b BTC"])
        #expect(calls([set("p:a", "BTC"), set("p:a", "BTC", version: "2"), set("p:a", "ETH")]) == ["p:a BTC", "p:a BTC,ETH"])
        let delete = CacheMutation.positionDelete(key: "p:a", versionKey: "p:a:v", field: "SOL", version: "3", ttlSeconds: 60)
        #expect(calls([set("p:a", "BTC"), delete, set("p:a", "ETH")]) == ["p:a BTC", "p:a other", "p:a ETH"])
        #expect(calls([set("p:a", "BTC"), set("p:a", "ETH", ttl: 30)]) == ["p:a BTC", "p:a ETH"])
        #expect(calls([set("p:a", "BTC")]) == ["p:a BTC"])
        // The fields keep their versions and values.
        let merged = CacheMutation.coalesced([set("p:a", "BTC", version: "4"), set("p:a", "ETH", version: "5")])
        #expect(merged == [.positionSets(key: "p:a", versionKey: "p:a:v", fields: [("BTC", "4", "{\"v\":4}"), ("ETH", "5", "{\"v\":5}")],
                                         ttlSeconds: 60)])
    }
}
