import CLinuxShims
import EngineStoreWire
import Foundation
import Hiredis
import LibPQ
import Logging
import Synchronization

/// The background side of the cache, on a thread of its own with its own Postgres and Redis
/// connections: the outbox relay, clearing outbox rows the direct path applied, Hydrate,
/// CheckConsistency (on demand and periodic) and the idempotency-key purge.
/// Safe with several instances: the relay claims rows with FOR UPDATE SKIP LOCKED, Hydrate takes a
/// Redis lock, and everything it writes is derived from Postgres.
final class CacheMaintenance: Sendable {
    enum Task: Sendable {
        case hydrate(HydrateRequest, ReplyTarget)
        case check(CheckConsistencyRequest, ReplyTarget)
    }

    struct Settings: Sendable {
        var conninfo: String
        var redis: RedisEndpoint
        var rebuilder: CacheRebuilder
        var instanceID: String
        /// Outbox rows younger than this are left to the direct path.
        var relayGraceMs: Int = 2000
        var relayIntervalMs: Int = 200
        var hydrateOnStart: Bool = true
        /// 0 = no periodic check.
        var checkIntervalSeconds: Int = 300
        var idempotencyRetentionHours: Int = 24
        var purgeIntervalMs: UInt64 = 600_000
        var hooks = TestHooks()
    }

    private let settings: Settings
    private let tasks = BlockingQueue<Task>()
    private let cleaner: OutboxCleaner
    private let stats: ServerStats
    let metrics: ServerMetrics?
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    init(settings: Settings, cleaner: OutboxCleaner, stats: ServerStats, metrics: ServerMetrics? = nil, logger: Logger) {
        self.metrics = metrics
        self.settings = settings
        self.cleaner = cleaner
        self.stats = stats
        self.logger = logger
    }

    func start() {
        let t = Thread { [self] in
            Worker(owner: self).run()
            finished.signal()
        }
        t.name = "engine-store-cache-maintenance"
        t.start()
    }

    func submit(_ task: Task) { tasks.push(task) }

    func shutdown() {
        tasks.close()
        finished.wait()
    }

    /// The thread's state.
    private final class Worker {
        let owner: CacheMaintenance
        var settings: Settings { owner.settings }
        var rebuilder: CacheRebuilder { owner.settings.rebuilder }
        var keys: CacheKeys { rebuilder.keys }
        var logger: Logger { owner.logger }
        var session: PostgresSession?
        var redis: RedisConnection?
        var nextPostgresAttempt: UInt64 = 0
        var nextRedisAttempt: UInt64 = 0
        var nextRelay: UInt64 = 0
        var nextPurge: UInt64
        var nextCheck: UInt64
        var nextDepth: UInt64 = 0
        var nextTrim: UInt64 = 0
        var hydrated = false

        init(owner: CacheMaintenance) {
            self.owner = owner
            let now = monotonicNanos()
            nextPurge = now + min(60_000, owner.settings.purgeIntervalMs) * 1_000_000
            nextCheck = owner.settings.checkIntervalSeconds > 0 ? now + UInt64(owner.settings.checkIntervalSeconds) * 1_000_000_000 : .max
        }

        func run() {
            while true {
                let batch = owner.tasks.popBatch(max: 16, timeoutSeconds: 0.05)
                if batch.isEmpty && owner.tasks.isClosedAndEmpty { break }
                for task in batch { handle(task) }
                let now = monotonicNanos()
                clearApplied()
                if !hydrated && settings.hydrateOnStart, let s = postgres(), let r = redisConnection() {
                    hydrated = true
                    do {
                        let result = try hydrate(HydrateRequest(), s, r)
                        logger.info("cache warmed up", metadata: ["ran": "\(result.ran)", "models": "\(result.models)",
                                                                  "keys": "\(result.keysWritten)", "ms": "\(result.tookMs)"])
                    } catch { failed(error, "hydrate") }
                }
                if now >= nextRelay {
                    nextRelay = now + UInt64(settings.relayIntervalMs) * 1_000_000
                    // After a failed pass (Redis refusing writes, say) wait longer before the next.
                    if !relay() { nextRelay = now + 1_000_000_000 }
                }
                if now >= nextTrim {
                    // Bursts (relay rebuilds, big batches) leave freed pages in glibc's arenas;
                    // return them so RSS follows the working set.
                    nextTrim = now + 250_000_000
                    es_trim_heap()
                }
                if now >= nextDepth {
                    nextDepth = now + 1_000_000_000
                    if let s = postgres(), let depth = try? s.run(Outbox.depth, []).int(0, 0) {
                        owner.metrics?.outboxDepth.record(depth)
                    }
                }
                if now >= nextPurge {
                    nextPurge = now + settings.purgeIntervalMs * 1_000_000
                    purgeIdempotencyKeys()
                }
                if now >= nextCheck {
                    nextCheck = now + UInt64(settings.checkIntervalSeconds) * 1_000_000_000
                    if let s = postgres(), let r = redisConnection() {
                        do {
                            let result = try check(CheckConsistencyRequest(), s, r)
                            if !result.differences.isEmpty {
                                logger.warning("consistency check found differences", metadata: [
                                    "reason": "cache_inconsistent", "count": "\(result.differences.count)",
                                    "first": "\(result.differences[0].kind) \(result.differences[0].key)",
                                ])
                            }
                        } catch { failed(error, "periodic check") }
                    }
                }
            }
            clearApplied()
        }

        // MARK: connections

        func postgres() -> PostgresSession? {
            if let session { return session }
            guard monotonicNanos() >= nextPostgresAttempt else { return nil }
            do {
                let connection = try PGConnection(conninfo: settings.conninfo, connectTimeoutSeconds: 3,
                                                  applicationName: "engine-store-maintenance")
                // Outbox clean-up and relay commits need no WAL flush of their own: losing one in a
                // crash only means a key is rebuilt once more (at least once). Keeps them off the
                // fsync path that acknowledged writes wait on.
                try connection.exec("SET synchronous_commit TO off")
                session = PostgresSession(connection: connection)
            } catch {
                nextPostgresAttempt = monotonicNanos() + 1_000_000_000
            }
            return session
        }

        func redisConnection() -> RedisConnection? {
            if let redis, !redis.isBroken { return redis }
            redis = nil
            guard monotonicNanos() >= nextRedisAttempt else { return nil }
            do {
                redis = try RedisConnection(endpoint: settings.redis, timeoutMs: 2000)
            } catch {
                nextRedisAttempt = monotonicNanos() + 250_000_000
            }
            return redis
        }

        func failed(_ error: any Error, _ what: String) {
            if let e = error as? PGError, e.kind == .connection { session = nil }
            if redis?.isBroken == true { redis = nil }
            logger.warning("cache maintenance step failed", metadata: ["reason": "maintenance_failed", "step": "\(what)", "error": "\(error)"])
        }

        /// Sends the mutations; throws unless Redis confirmed every command (an error reply such as
        /// OOM or READONLY leaves the caller's outbox rows in place).
        func apply(_ mutations: [CacheMutation], _ r: RedisConnection) throws -> Int {
            guard !mutations.isEmpty else { return 0 }
            let replies = try r.pipeline(mutations.flatMap(\.commands))
            for case .error(let e) in replies { throw RedisRefused(message: e) }
            return mutations.count
        }

        /// Ids of cached trades that Postgres does not have (they can only be removed by name: the
        /// list is otherwise merged, never replaced).
        func unknownTrades(_ list: [String], _ s: PostgresSession) throws -> [String] {
            let ids = list.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
                .compactMap { $0["id"] as? String }
            guard !ids.isEmpty else { return [] }
            let found = try s.run(CacheRebuilder.existingTrades, [pgArray(ids)])
            let known = Set((0..<found.rowCount).compactMap { found.string($0, 0) })
            return ids.filter { !known.contains($0) }
        }

        // MARK: outbox

        /// Deletes outbox rows whose mutations the direct path applied.
        func clearApplied() {
            let ids = owner.cleaner.take()
            guard !ids.isEmpty else { return }
            guard let s = postgres() else { return }  // the relay will redo them; harmless
            do {
                try s.run(Outbox.delete, [pgArray(ids.map(String.init))])
            } catch { failed(error, "outbox clear") }
        }

        /// Applies what the direct path did not: rows it handed over (a missing hash), then rows older
        /// than the grace period (a crash, Redis down).
        /// Returns false when a batch failed.
        func relay() -> Bool {
            guard let s = postgres() else { return false }
            let urgent = owner.cleaner.takeUrgent()
            if !urgent.isEmpty {
                if relayBatch(s, Outbox.claimIDs, [pgArray(urgent.map(String.init))]) == nil {
                    owner.cleaner.rebuildSoon(urgent)  // try again next pass
                    return false
                }
            }
            for _ in 0..<20 {
                guard let n = relayBatch(s, Outbox.claimDue, [String(settings.relayGraceMs), "500"]) else { return false }
                if n == 0 { break }
            }
            return true
        }

        /// Claims rows with `claim`, rebuilds their keys from Postgres, applies, deletes. Returns the
        /// rows handled, or nil when Postgres or Redis failed (the rows stay for a later pass).
        func relayBatch(_ s: PostgresSession, _ claim: Statement, _ params: [String?]) -> Int? {
            guard let r = redisConnection() else { return nil }
            do {
                try s.exec("BEGIN")
                let due = try s.run(claim, params)
                if due.rowCount == 0 {
                    try s.exec("COMMIT")
                    return 0
                }
                var ids: [String] = []
                var intents: [OutboxIntent] = []
                var seen = Set<String>()
                for i in 0..<due.rowCount {
                    ids.append(due.string(i, 0) ?? "0")
                    guard let intent = OutboxIntent(kind: due.string(i, 1) ?? "", subject: due.string(i, 2) ?? "", ref: due.string(i, 3) ?? "") else { continue }
                    // Rebuilding a key once per batch is enough (stream entries are each kept).
                    let row = intent.row
                    let dedupe = row.kind.hasSuffix("_event") ? ids.last! : "\(row.kind)|\(row.subject)|\(row.ref)"
                    if seen.insert(dedupe).inserted { intents.append(intent) }
                }
                let mutations = try rebuilder.mutations(for: intents, s)
                settings.hooks.relayWillApply?(mutations.map(\.key))
                _ = try apply(mutations, r)
                try s.run(Outbox.delete, [pgArray(ids)])
                try s.exec("COMMIT")
                owner.metrics?.outboxRelayed.increment(by: ids.count)
                return ids.count
            } catch {
                _ = try? s.exec("ROLLBACK")
                failed(error, "outbox relay")
                return nil
            }
        }

        func purgeIdempotencyKeys() {
            guard let s = postgres() else { return }
            do {
                let r = try s.run(purgeKeys, [String(settings.idempotencyRetentionHours)])
                if r.affectedRows > 0 { logger.info("idempotency keys purged", metadata: ["count": "\(r.affectedRows)"]) }
            } catch { failed(error, "idempotency purge") }
        }

        // MARK: tasks

        func handle(_ task: Task) {
            // Not started once its deadline passed (proto-spec §3.6).
            let target: ReplyTarget
            switch task { case .hydrate(_, let t), .check(_, let t): target = t }
            guard monotonicNanos() < target.deadlineNanos else {
                return target.fail(ServiceError(.deadlineExceeded, "deadline passed before the request ran", retryable: true))
            }
            switch task {
            case .hydrate(let request, let reply):
                guard let s = postgres() else { return reply.fail(ServiceError(.unavailable, "postgres unavailable")) }
                guard let r = redisConnection() else { return reply.fail(ServiceError(.unavailable, "redis unavailable")) }
                do { reply.send(try hydrate(request, s, r)) } catch {
                    failed(error, "hydrate")
                    reply.fail(ServiceError(.unavailable, "hydrate failed: \(error)"))
                }
            case .check(let request, let reply):
                guard let s = postgres() else { return reply.fail(ServiceError(.unavailable, "postgres unavailable")) }
                guard let r = redisConnection() else { return reply.fail(ServiceError(.unavailable, "redis unavailable")) }
                do { reply.send(try check(request, s, r)) } catch {
                    failed(error, "check")
                    reply.fail(ServiceError(.unavailable, "consistency check failed: \(error)"))
                }
            }
        }

        /// Rebuilds every key of the given (or all) models and traders, under a Redis lock.
        func hydrate(_ request: HydrateRequest, _ s: PostgresSession, _ r: RedisConnection) throws -> HydrateResponse {
            let start = monotonicNanos()
            let lock = keys.namespace + "lock:hydrate"
            let token = settings.instanceID + "-" + String(start)
            guard try r.command(["SET", lock, token, "NX", "PX", "120000"]) == .status("OK") else {
                return HydrateResponse(ran: false, models: 0, keysWritten: 0, tookMs: 0)
            }
            settings.hooks.hydrateLocked?()
            defer {
                _ = try? r.command(["EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
                                    "1", lock, token])
            }
            let everything = request.models.isEmpty && request.traders.isEmpty
            let modelsResult = everything ? try s.run(CacheRebuilder.allModels, []) : nil
            let models = modelsResult.map { m in (0..<m.rowCount).compactMap { m.string($0, 0) } } ?? request.models
            var written = 0
            for model in models {
                let list = (try r.command(["LRANGE", keys.recentTrades(model: model), "0", "-1"]).array ?? []).compactMap(\.text)
                written += try apply(try rebuilder.hydrate(s, model: model, dropTrades: try unknownTrades(list, s)), r)
            }
            let tradersResult = everything ? try s.run(CacheRebuilder.allTraders, []) : nil
            let traders = tradersResult.map { t in (0..<t.rowCount).compactMap { t.string($0, 0) } } ?? request.traders
            for trader in traders {
                written += try apply(try rebuilder.mutations(for: .traderState(trader: trader), s), r)
            }
            if everything || !models.isEmpty { written += try apply(try rebuilder.hydrateLeaderboard(s), r) }
            return HydrateResponse(ran: true, models: UInt32(models.count), keysWritten: UInt32(written),
                                   tookMs: (monotonicNanos() - start) / 1_000_000)
        }

        /// Postgres vs Redis (and vs the exchange where supplied). Never changes Postgres.
        func check(_ request: CheckConsistencyRequest, _ s: PostgresSession, _ r: RedisConnection) throws -> CheckConsistencyResponse {
            var differences: [Inconsistency] = []
            var checked = 0
            var repairs: [CacheMutation] = []
            let models: [String]
            if request.models.isEmpty {
                let m = try s.run(CacheRebuilder.allModels, [])
                models = (0..<m.rowCount).compactMap { m.string($0, 0) }
            } else {
                models = request.models
            }
            for model in models {
                // Positions hash: when it exists it must hold exactly the open positions.
                let key = keys.positions(model: model)
                let expected = Dictionary(try rebuilder.positions(s, model: model).map { ($0.symbol, $0.json) }, uniquingKeysWith: { a, _ in a })
                let fields = try r.command(["HGETALL", key]).array ?? []
                if !fields.isEmpty {
                    var actual: [String: String] = [:]
                    var i = 0
                    while i + 1 < fields.count { actual[fields[i].text ?? ""] = fields[i + 1].text ?? ""; i += 2 }
                    var bad = false
                    for symbol in Set(expected.keys).union(actual.keys).sorted() {
                        checked += 1
                        if !sameJSON(expected[symbol], actual[symbol]) {
                            bad = true
                            differences.append(Inconsistency(kind: "positions_cache", key: "\(key) \(symbol)",
                                                             databaseValue: expected[symbol] ?? "", otherValue: actual[symbol] ?? "",
                                                             repaired: request.repair))
                        }
                    }
                    if bad && request.repair {
                        repairs.append(try rebuilder.positionsSync(s, model: model, mode: .replace))
                    }
                }
                // Recent trades: when the list exists it must be the newest trades, newest first.
                let listKey = keys.recentTrades(model: model)
                let list = (try r.command(["LRANGE", listKey, "0", "-1"]).array ?? []).compactMap(\.text)
                if !list.isEmpty {
                    checked += 1
                    let trades = try rebuilder.recentTrades(s, model: model)
                    if list.count != trades.count || zip(list, trades).contains(where: { !sameJSON($0, $1) }) {
                        differences.append(Inconsistency(kind: "recent_trades_cache", key: listKey,
                                                         databaseValue: "[" + trades.joined(separator: ",") + "]",
                                                         otherValue: "[" + list.joined(separator: ",") + "]", repaired: request.repair))
                        if request.repair {
                            repairs.append(try rebuilder.recentTradesMerge(s, model: model, drop: try unknownTrades(list, s)))
                        }
                    }
                }
            }
            // Trader states: every stored trader whose key exists.
            let traders = try s.run(CacheRebuilder.allTraders, [])
            for i in 0..<traders.rowCount {
                guard let trader = traders.string(i, 0) else { continue }
                let key = keys.traderState(trader: trader)
                guard let cached = try r.command(["GET", key]).text else { continue }
                checked += 1
                let expected = try rebuilder.traderState(s, trader: trader)
                if !sameJSON(expected, cached) {
                    differences.append(Inconsistency(kind: "trader_state_cache", key: key, databaseValue: expected ?? "",
                                                     otherValue: cached, repaired: request.repair))
                    if request.repair { repairs.append(contentsOf: try rebuilder.mutations(for: .traderState(trader: trader), s)) }
                }
            }
            // Leaderboard: no TTL, so it must exist and match whenever analytics exist.
            let board = try rebuilder.leaderboard(s)
            let cachedBoard = try r.command(["ZRANGE", keys.leaderboard, "0", "-1", "WITHSCORES"]).array ?? []
            var cachedScores: [String: Double] = [:]
            var j = 0
            while j + 1 < cachedBoard.count {
                cachedScores[cachedBoard[j].text ?? ""] = cachedBoard[j + 1].text.flatMap(Double.init)
                j += 2
            }
            let expectedScores = Dictionary(board.members.map { ($0.1, $0.0) }, uniquingKeysWith: { a, _ in a })
            checked += 1
            if expectedScores != cachedScores {
                func render(_ d: [String: Double]) -> String {
                    d.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                }
                differences.append(Inconsistency(kind: "leaderboard_cache", key: keys.leaderboard, databaseValue: render(expectedScores),
                                                 otherValue: render(cachedScores), repaired: request.repair))
                if request.repair { repairs.append(contentsOf: try rebuilder.hydrateLeaderboard(s)) }
            }
            // Exchange positions supplied by the engine: reported, never fixed.
            for model in Set(request.exchangeModels).sorted() {
                let db = try s.run(CacheRebuilder.allOpenPositions, [model])
                var dbPositions: [String: (String, Double)] = [:]
                for i in 0..<db.rowCount { dbPositions[db.string(i, 0) ?? ""] = (db.string(i, 2) ?? "", db.double(i, 3) ?? 0) }
                var exchange: [String: (String, Double)] = [:]
                for p in request.exchangePositions where p.modelID == model { exchange[p.symbol.uppercased()] = (p.side.description, p.quantity) }
                for symbol in Set(dbPositions.keys).union(exchange.keys).sorted() {
                    checked += 1
                    let a = dbPositions[symbol], b = exchange[symbol]
                    let same = a != nil && b != nil && a!.0 == b!.0 && abs(a!.1 - b!.1) <= max(abs(a!.1), 1) * 1e-9
                    if !same {
                        differences.append(Inconsistency(kind: "exchange_positions", key: "\(model)|\(symbol)",
                                                         databaseValue: a.map { "\($0.0) \($0.1)" } ?? "",
                                                         otherValue: b.map { "\($0.0) \($0.1)" } ?? "", repaired: false))
                    }
                }
            }
            if !repairs.isEmpty { _ = try apply(repairs, r) }
            owner.metrics?.inconsistencies.increment(by: differences.count)
            return CheckConsistencyResponse(differences: differences, checked: UInt32(checked))
        }
    }
}

struct RedisRefused: Error, CustomStringConvertible {
    let message: String
    var description: String { "redis refused a command: \(message)" }
}

private let purgeKeys = Statement(name: "idem_purge", sql: """
    DELETE FROM engine_store_idempotency WHERE created_at < now() - make_interval(hours => $1::int)
    """)

/// Two JSON texts mean the same (key order and spacing aside); nil and nil are the same.
func sameJSON(_ a: String?, _ b: String?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    if a == b { return true }
    guard let x = try? JSONSerialization.jsonObject(with: Data(a.utf8), options: [.fragmentsAllowed]),
          let y = try? JSONSerialization.jsonObject(with: Data(b.utf8), options: [.fragmentsAllowed]) else { return false }
    return jsonEqual(x, y)
}

/// Deep equality of two values from JSONSerialization (numbers compared by value).
func jsonEqual(_ x: Any, _ y: Any) -> Bool {
    switch (x, y) {
    case (let a as [String: Any], let b as [String: Any]):
        guard a.count == b.count else { return false }
        return a.allSatisfy { k, v in b[k].map { jsonEqual(v, $0) } ?? false }
    case (let a as [Any], let b as [Any]):
        return a.count == b.count && zip(a, b).allSatisfy { jsonEqual($0, $1) }
    case (let a as String, let b as String):
        return a == b
    case (is NSNull, is NSNull):
        return true
    case (let a as NSNumber, let b as NSNumber) where isBool(a) || isBool(b):
        return isBool(a) && isBool(b) && a.boolValue == b.boolValue
    default:
        if let a = jsonNumber(x), let b = jsonNumber(y) { return a == b }
        return false
    }
}

/// JSONSerialization gives true/false as boolean NSNumbers (type "c"); numbers come as "i", "q" or "d".
private func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

private func jsonNumber(_ v: Any) -> Double? {
    switch v {
    case let n as NSNumber: return n.doubleValue
    case let i as Int: return Double(i)
    case let d as Double: return d
    default: return nil
    }
}
