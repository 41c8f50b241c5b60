import EngineStoreWire
import Hiredis
import Logging

/// CheckConsistency: Postgres vs Redis (and vs the exchange where supplied). Never changes
/// Postgres; with `repair` it rewrites the cached keys that differ, from Postgres.
struct ConsistencyChecker {
    let connections: MaintenanceConnections
    let rebuilder: CacheRebuilder
    let metrics: ServerMetrics?
    private var keys: CacheKeys { rebuilder.keys }

    init(connections: MaintenanceConnections, rebuilder: CacheRebuilder, metrics: ServerMetrics?) {
        self.connections = connections
        self.rebuilder = rebuilder
        self.metrics = metrics
    }

    /// The periodic check: everything, differences logged, nothing repaired.
    func runPeriodic() {
        if let s = connections.postgres(), let r = connections.redisConnection() {
            do {
                let result = try run(CheckConsistencyRequest(), s, r)
                if !result.differences.isEmpty {
                    connections.logger.warning("consistency check found differences", metadata: [
                        "reason": "cache_inconsistent", "count": "\(result.differences.count)",
                        "first": "\(result.differences[0].kind) \(result.differences[0].key)",
                    ])
                }
            } catch { connections.failed(error, "periodic check") }
        }
    }

    func run(_ request: CheckConsistencyRequest, _ s: PostgresSession, _ r: RedisConnection) throws -> CheckConsistencyResponse {
        var tally = ConsistencyTally(repair: request.repair)
        let models: [String]
        if request.models.isEmpty {
            models = try s.rows(CacheRebuilder.ModelIDs())
        } else {
            models = request.models
        }
        for model in models {
            // Positions hash: when it exists it must hold exactly the open positions.
            let key = keys.positions(model: model)
            let expected = Dictionary(try rebuilder.positions(s, model: model).map { ($0.symbol, $0.json) },
                                      uniquingKeysWith: { a, _ in a })
            let fields = try r.command(["HGETALL", key]).array ?? []
            if !fields.isEmpty {
                var actual: [String: String] = [:]
                var i = 0
                while i + 1 < fields.count { actual[fields[i].text ?? ""] = fields[i + 1].text ?? ""; i += 2 }
                var bad = false
                for symbol in Set(expected.keys).union(actual.keys).sorted() {
                    tally.checked += 1
                    if !sameJSON(expected[symbol], actual[symbol]) {
                        bad = true
                        tally.differences.append(Inconsistency(kind: "positions_cache", key: "\(key) \(symbol)",
                                                               databaseValue: expected[symbol] ?? "", otherValue: actual[symbol] ?? "",
                                                               repaired: request.repair))
                    }
                }
                if bad && request.repair {
                    tally.repairs.append(try rebuilder.positionsSync(s, model: model, mode: .replace))
                }
            }
            for kind in CachedDocuments.all where kind.perModel { try kind.check(s, r, subject: model, rebuilder, &tally) }
        }
        // Descriptor-owned kinds with their own subjects (trader states, ...).
        for kind in CachedDocuments.all where !kind.perModel {
            for subject in try kind.checkSubjects(s) { try kind.check(s, r, subject: subject, rebuilder, &tally) }
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
        tally.checked += 1
        if expectedScores != cachedScores {
            func render(_ d: [String: Double]) -> String {
                d.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            }
            tally.differences.append(Inconsistency(kind: "leaderboard_cache", key: keys.leaderboard, databaseValue: render(expectedScores),
                                                   otherValue: render(cachedScores), repaired: request.repair))
            if request.repair { tally.repairs.append(contentsOf: try rebuilder.hydrateLeaderboard(s)) }
        }
        // Exchange positions supplied by the engine: reported, never fixed.
        for model in Set(request.exchangeModels).sorted() {
            var dbPositions: [String: (String, Double)] = [:]
            for row in try rebuilder.positions(s, model: model) { dbPositions[row.symbol] = (row.side, row.quantity) }
            var exchange: [String: (String, Double)] = [:]
            for p in request.exchangePositions where p.modelID == model { exchange[p.symbol.uppercased()] = (p.side.description, p.quantity) }
            for symbol in Set(dbPositions.keys).union(exchange.keys).sorted() {
                tally.checked += 1
                let a = dbPositions[symbol], b = exchange[symbol]
                let same = a != nil && b != nil && a!.0 == b!.0 && abs(a!.1 - b!.1) <= max(abs(a!.1), 1) * 1e-9
                if !same {
                    tally.differences.append(Inconsistency(kind: "exchange_positions", key: "\(model)|\(symbol)",
                                                           databaseValue: a.map { "\($0.0) \($0.1)" } ?? "",
                                                           otherValue: b.map { "\($0.0) \($0.1)" } ?? "", repaired: false))
                }
            }
        }
        if !tally.repairs.isEmpty { _ = try connections.apply(tally.repairs, r) }
        metrics?.inconsistencies.increment(by: tally.differences.count)
        return CheckConsistencyResponse(differences: tally.differences, checked: UInt32(tally.checked))
    }
}
