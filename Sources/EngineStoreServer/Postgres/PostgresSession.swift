import LibPQ

/// A statement as one typed thing (like postgres-nio's `PostgresPreparedStatement`): which SQL it
/// runs (a case of `SQLText`, from SQL/*.sql), the values it binds from its own properties, and how
/// one row of its result reads, by column name.
protocol PGStatement: Sendable {
    associatedtype Row
    static var sql: SQLText { get }
    /// `$1`, `$2`, … in order, in Postgres's text format (nil = NULL).
    var bindings: [String?] { get }
    static func decode(_ row: PGRow) -> Row
}

extension PGStatement where Row == Void {
    static func decode(_ row: PGRow) {}
}

extension PGStatement {
    /// The statement with its values, as a pipeline sends it.
    var call: PGCall { PGCall(sql: Self.sql, bindings: bindings) }
    static func rows(_ result: PGResult) -> [Row] { (0..<result.rowCount).map { decode(PGRow(result, $0)) } }
}

/// A prepared statement and its values.
struct PGCall: Sendable {
    let sql: SQLText
    let bindings: [String?]

    init(sql: SQLText, bindings: [String?]) {
        assert(bindings.count == sql.parameterCount, "\(sql.rawValue) takes \(sql.parameterCount) parameters, not \(bindings.count)")
        self.sql = sql
        self.bindings = bindings
    }

    /// The call in a pipeline (its statement must be prepared on the session first).
    var item: PGPipelineItem { .prepared(name: sql.rawValue, params: bindings) }
}

/// One row of a result, read by column name (a name the statement does not return is a bug: it
/// fails an assertion in debug builds and reads as NULL otherwise).
struct PGRow {
    let result: PGResult
    let index: Int

    init(_ result: PGResult, _ index: Int) {
        self.result = result
        self.index = index
    }

    private func column(_ name: String) -> Int {
        let c = result.columnIndex(name)
        assert(c >= 0, "the statement returns no column \(name)")
        return c
    }

    func has(_ name: String) -> Bool { result.columnIndex(name) >= 0 }
    func string(_ name: String) -> String? { result.string(index, column(name)) }
    func double(_ name: String) -> Double? { result.double(index, column(name)) }
    func int(_ name: String) -> Int64? { result.int(index, column(name)) }
    func bool(_ name: String) -> Bool? { result.bool(index, column(name)) }
}

/// A worker's connection plus the statements already prepared on it (named by their `SQLText` case).
final class PostgresSession {
    let connection: PGConnection
    private var prepared: Set<SQLText> = []

    init(connection: PGConnection) { self.connection = connection }

    /// Runs a statement, preparing it on first use.
    @discardableResult
    func run(_ call: PGCall) throws(PGError) -> PGResult {
        try ensurePrepared([call.sql])
        return try connection.execPrepared(call.sql.rawValue, call.bindings)
    }

    /// Every row, decoded.
    func rows<S: PGStatement>(_ statement: S) throws(PGError) -> [S.Row] { S.rows(try run(statement.call)) }

    /// The first row, if any.
    func first<S: PGStatement>(_ statement: S) throws(PGError) -> S.Row? {
        let r = try run(statement.call)
        return r.rowCount > 0 ? S.decode(PGRow(r, 0)) : nil
    }

    /// Runs it for its effect; the result tells the rows affected.
    @discardableResult
    func execute<S: PGStatement>(_ statement: S) throws(PGError) -> PGResult { try run(statement.call) }

    func exec(_ sql: String) throws(PGError) { try connection.exec(sql) }

    /// Statements that need no earlier result, in one round trip; throws the first failure (the
    /// rest are skipped, and an open transaction is then failed, as after any failed statement).
    func runAll(_ calls: [PGCall]) throws(PGError) -> [PGResult] {
        try ensurePrepared(calls.map(\.sql))
        return try runAll(calls.map(\.item))
    }

    /// `runAll` for items already prepared (or plain SQL such as BEGIN and COMMIT).
    func runAll(_ items: [PGPipelineItem]) throws(PGError) -> [PGResult] {
        var results: [PGResult] = []
        results.reserveCapacity(items.count)
        for outcome in try connection.pipeline(items) {
            switch outcome {
            case .ok(let r): results.append(r)
            case .failed(let e): throw e
            case .aborted: throw PGError(kind: .statement, sqlState: nil, message: "skipped after an earlier failure")
            }
        }
        return results
    }

    /// Prepares what is not prepared yet (pipeline mode needs statements prepared beforehand).
    func ensurePrepared(_ statements: [SQLText]) throws(PGError) {
        for s in statements where !prepared.contains(s) {
            try connection.prepare(s.rawValue, s.text)
            prepared.insert(s)
        }
    }
}
