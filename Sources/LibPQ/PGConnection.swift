import CLibPQ
import Glibc

/// An error from libpq: the server's SQLSTATE when there is one, and its message.
/// libpq echoes parts of a connection string it cannot parse (a malformed percent escape in a
/// password, say), so `PGConnection` passes every message through the string's `SecretRedactor`.
public struct PGError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Could not connect, or the connection broke: retry after reconnecting.
        case connection
        /// The server rejected a statement (see `sqlState`).
        case statement
    }

    public let kind: Kind
    public let sqlState: String?
    public let message: String

    public init(kind: Kind, sqlState: String?, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String {
        if let sqlState { return "\(message) (SQLSTATE \(sqlState))" }
        return message
    }

    /// Class 23: integrity constraint violation.
    public var isConstraintViolation: Bool { sqlState?.hasPrefix("23") ?? false }
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// Class 08 (connection exception), 57P01..03 (admin shutdown, crash shutdown, cannot connect now),
    /// 40001/40P01 (serialization failure, deadlock) are worth retrying.
    public var isTransient: Bool {
        if kind == .connection { return true }
        guard let s = sqlState else { return false }
        return s.hasPrefix("08") || s.hasPrefix("57P") || s == "40001" || s == "40P01"
    }
}

/// One libpq connection. Not thread-safe (libpq connections are not): owned by one thread at a time.
public final class PGConnection {
    private let handle: OpaquePointer
    /// Masks the connection string's password in every error message this connection makes.
    private let redactor: SecretRedactor

    /// Connects with a libpq connection string (URI or keyword/value form); blocks until connected or failed.
    /// `connectTimeoutSeconds` bounds the wait when the string does not set `connect_timeout` itself.
    public init(conninfo: String, connectTimeoutSeconds: Int = 5, applicationName: String = "engine-store") throws(PGError) {
        // expand_dbname=1 lets `dbname` carry a whole URI or keyword string; the later keywords only fill gaps
        // the string leaves (libpq gives the expanded string precedence for keys it sets).
        let keys = ["connect_timeout", "application_name", "dbname"]
        let values = [String(connectTimeoutSeconds), applicationName, conninfo]
        let conn: OpaquePointer? = withCStrings(keys) { k in
            withCStrings(values) { v in
                PQconnectdbParams(k, v, 1)
            }
        }
        guard let conn else {
            throw PGError(kind: .connection, sqlState: nil, message: "libpq could not allocate a connection")
        }
        let redactor = SecretRedactor(connectionString: conninfo)
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = redactor.redact(Self.trimmed(PQerrorMessage(conn)))
            PQfinish(conn)
            throw PGError(kind: .connection, sqlState: nil, message: message)
        }
        // Server NOTICEs (e.g. "relation already exists, skipping") would go to stderr; drop them.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        handle = conn
        self.redactor = redactor
    }

    deinit { PQfinish(handle) }

    var rawHandle: OpaquePointer { handle }

    func copyInStart(_ sql: String) throws(PGError) {
        _ = try check(PQexec(handle, sql))
    }

    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }
    public var serverVersion: Int { Int(PQserverVersion(handle)) }
    public var socket: Int32 { PQsocket(handle) }

    /// Runs one or more statements without parameters (DDL, BEGIN/COMMIT). Returns the last result.
    @discardableResult
    public func exec(_ sql: String) throws(PGError) -> PGResult {
        try check(PQexec(handle, sql))
    }

    /// Prepares a named statement on this connection.
    public func prepare(_ name: String, _ sql: String) throws(PGError) {
        _ = try check(PQprepare(handle, name, sql, 0, nil))
    }

    /// Runs a prepared statement with text-format parameters (nil = SQL NULL).
    @discardableResult
    public func execPrepared(_ name: String, _ params: [String?]) throws(PGError) -> PGResult {
        let result = withParams(params) { count, values in
            PQexecPrepared(handle, name, count, values, nil, nil, 0)
        }
        return try check(result)
    }

    /// Runs a parameterised statement without preparing it first.
    @discardableResult
    public func execParams(_ sql: String, _ params: [String?]) throws(PGError) -> PGResult {
        let result = withParams(params) { count, values in
            PQexecParams(handle, sql, count, nil, values, nil, nil, 0)
        }
        return try check(result)
    }

    /// Drops and re-establishes the connection; prepared statements are lost.
    public func reset() -> Bool {
        PQreset(handle)
        return PQstatus(handle) == CONNECTION_OK
    }

    private func check(_ result: OpaquePointer?) throws(PGError) -> PGResult {
        guard let result else {
            throw PGError(kind: .connection, sqlState: nil, message: errorText(PQerrorMessage(handle)))
        }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN, PGRES_COPY_OUT:
            return PGResult(result)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = errorText(PQresultErrorMessage(result))
            PQclear(result)
            let broken = PQstatus(handle) != CONNECTION_OK
            throw PGError(kind: broken ? .connection : .statement, sqlState: state,
                          message: message.isEmpty ? errorText(PQerrorMessage(handle)) : message)
        }
    }

    /// An error text from libpq, trimmed and with the password masked.
    func errorText(_ p: UnsafePointer<CChar>?) -> String { redactor.redact(Self.trimmed(p)) }

    static func trimmed(_ p: UnsafePointer<CChar>?) -> String {
        guard let p else { return "" }
        var s = String(cString: p)
        while s.last == "\n" || s.last == " " { s.removeLast() }
        return s
    }
}

/// A query result, freed with the object. Values are libpq's text format. Used by one thread at a
/// time, like the connection it came from.
public final class PGResult {
    private let handle: OpaquePointer
    /// Column names, read on the first lookup: rows are read by name, field by field, and PQfnumber
    /// scans every column name (folding case) on each call.
    private var columns: ColumnNames?
    /// Where the last lookup found its column: decoders read a row's columns mostly in the order the
    /// statement returns them, so the next lookup usually matches the next name at once (a name
    /// dictionary cost 5–6 % of the service's CPU under closes: a hash per lookup, built per result).
    private var lastHit = -1

    struct ColumnNames {
        let names: [String]
        /// No name occurs twice (told by a cheap checksum of each; equal sums count as a repeat).
        let unique: Bool

        init(_ handle: OpaquePointer) {
            var names: [String] = [], sums: [UInt64] = []
            for c in 0..<PQnfields(handle) {
                let p = PQfname(handle, c)!
                var sum: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
                var q = p
                while q.pointee != 0 { sum = (sum ^ UInt64(UInt8(bitPattern: q.pointee))) &* 0x100_0000_01b3; q += 1 }
                names.append(String(cString: p))
                sums.append(sum)
            }
            self.names = names
            unique = !sums.indices.contains { i in sums[(i + 1)...].contains(sums[i]) }
        }
    }

    init(_ handle: OpaquePointer, columns: ColumnNames? = nil) {
        self.handle = handle
        self.columns = columns
    }
    deinit { PQclear(handle) }

    public var rowCount: Int { Int(PQntuples(handle)) }
    public var columnCount: Int { Int(PQnfields(handle)) }
    /// Rows affected by INSERT/UPDATE/DELETE (0 when not applicable).
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(handle))) ?? 0 }

    /// Out-of-range cells read as NULL (libpq would print a complaint to stderr).
    public func isNull(_ row: Int, _ column: Int) -> Bool {
        guard row >= 0, row < rowCount, column >= 0, column < columnCount else { return true }
        return PQgetisnull(handle, Int32(row), Int32(column)) == 1
    }

    public func string(_ row: Int, _ column: Int) -> String? {
        guard !isNull(row, column) else { return nil }
        return String(cString: PQgetvalue(handle, Int32(row), Int32(column)))
    }

    /// Numbers are parsed from libpq's buffer, without a String in between; text that is not wholly a
    /// number reads as nil, as `Int64(String)` and `Double(String)` would. (strtod's decimal point is the
    /// C locale's: no part of EngineStore calls setlocale.)
    public func int(_ row: Int, _ column: Int) -> Int64? {
        guard !isNull(row, column), let p = PQgetvalue(handle, Int32(row), Int32(column)), p.pointee != 0 else { return nil }
        var end: UnsafeMutablePointer<CChar>?
        errno = 0
        let v = strtoll(p, &end, 10)
        guard errno == 0, let end, end.pointee == 0, !p.pointee.isSpace else { return nil }
        return Int64(v)
    }

    public func double(_ row: Int, _ column: Int) -> Double? {
        guard !isNull(row, column), let p = PQgetvalue(handle, Int32(row), Int32(column)), p.pointee != 0 else { return nil }
        var end: UnsafeMutablePointer<CChar>?
        let v = strtod(p, &end)
        guard let end, end.pointee == 0, !p.pointee.isSpace else { return nil }
        return v
    }

    public func bool(_ row: Int, _ column: Int) -> Bool? {
        guard !isNull(row, column), let p = PQgetvalue(handle, Int32(row), Int32(column)) else { return nil }
        return p.pointee == 0x74 && p[1] == 0  // "t"
    }

    public func columnName(_ column: Int) -> String { String(cString: PQfname(handle, Int32(column))) }

    /// This result's rows dealt out by an ordinal column: part k (from 0) holds, in order, the rows whose
    /// `column` reads k + 1, with every column of this result. A statement that stands for `count`
    /// calls of another (one row set per call, told apart by the ordinal) hands each call its own
    /// result this way. Rows with no such ordinal are dropped.
    public func parts(byOrdinal column: String, count: Int) -> [PGResult] {
        let ordinal = columnIndex(column)  // builds `columns`, which every part shares
        var rowsOf = [[Int]](repeating: [], count: count)
        if ordinal >= 0 {
            for row in 0..<rowCount {
                if let k = int(row, ordinal), k >= 1, k <= Int64(count) { rowsOf[Int(k) - 1].append(row) }
            }
        }
        return rowsOf.map { rows in
            // Columns only (a PGRES_TUPLES_OK result), then the part's values copied in.
            guard let copy = PQcopyResult(handle, PG_COPYRES_ATTRS) else { preconditionFailure("PQcopyResult: out of memory") }
            for (target, row) in rows.enumerated() {
                for field in 0..<columnCount {
                    let isNull = PQgetisnull(handle, Int32(row), Int32(field)) == 1
                    let ok = PQsetvalue(copy, Int32(target), Int32(field), isNull ? nil : PQgetvalue(handle, Int32(row), Int32(field)),
                                        isNull ? -1 : PQgetlength(handle, Int32(row), Int32(field)))
                    precondition(ok == 1, "PQsetvalue: out of memory")
                }
            }
            return PGResult(copy, columns: columns)
        }
    }

    /// The column's number, -1 when the result has no such column. Exact names (as the statements
    /// spell them, lower case), unlike PQfnumber's case folding and quoting rules.
    /// A name that occurs twice is the first column of that name.
    public func columnIndex(_ name: String) -> Int {
        if self.columns == nil { self.columns = ColumnNames(handle) }
        let columns = self.columns!
        let names = columns.names
        guard columns.unique else { return names.firstIndex(of: name) ?? -1 }
        // From just after the last hit, round to it.
        for step in 0..<names.count {
            let c = (lastHit + 1 + step) % names.count
            if names[c] == name {
                lastHit = c
                return c
            }
        }
        return -1
    }
}

private extension CChar {
    var isSpace: Bool { self == 0x20 || (self >= 0x09 && self <= 0x0d) }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let owned = strings.map { strdup($0) }
    defer { owned.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = owned.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

func withParams<R>(_ params: [String?], _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let owned: [UnsafeMutablePointer<CChar>?] = params.map { $0.map { strdup($0) } ?? nil }
    defer { owned.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = owned.map { $0.map { UnsafePointer($0) } }
    return pointers.withUnsafeBufferPointer { body(Int32(params.count), $0.baseAddress) }
}

extension PGConnection {
    /// Runs `COPY … FROM STDIN` with `data` in the text format, in one round trip for the data.
    /// Returns the number of rows copied.
    @discardableResult
    public func copyIn(_ sql: String, _ data: [UInt8]) throws(PGError) -> Int {
        try copyInStart(sql)
        let sent = data.withUnsafeBytes { raw -> Int32 in
            guard let base = raw.baseAddress, raw.count > 0 else { return 1 }
            return PQputCopyData(rawHandle, base.assumingMemoryBound(to: CChar.self), Int32(raw.count))
        }
        guard sent == 1 else { throw PGError(kind: .connection, sqlState: nil, message: errorText(PQerrorMessage(rawHandle))) }
        guard PQputCopyEnd(rawHandle, nil) == 1 else {
            throw PGError(kind: .connection, sqlState: nil, message: errorText(PQerrorMessage(rawHandle)))
        }
        var rows = 0
        var failure: PGError?
        while let result = PQgetResult(rawHandle) {
            let status = PQresultStatus(result)
            if status == PGRES_COMMAND_OK {
                rows = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if failure == nil {
                let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
                failure = PGError(kind: PQstatus(rawHandle) == CONNECTION_OK ? .statement : .connection, sqlState: state,
                                  message: errorText(PQresultErrorMessage(result)))
            }
            PQclear(result)
        }
        if let failure { throw failure }
        return rows
    }
}

/// One statement sent in pipeline mode.
public enum PGPipelineItem: Sendable {
    /// A statement prepared earlier on this connection, with text parameters.
    case prepared(name: String, params: [String?])
    /// SQL without parameters (BEGIN, COMMIT, …).
    case sql(String)
}

/// What one pipelined statement produced.
public enum PGPipelineOutcome {
    case ok(PGResult)
    case failed(PGError)
    /// Not run: an earlier statement of the pipeline failed.
    case aborted
}

extension PGConnection {
    /// Sends every item without waiting, then one sync, and reads all results: one round trip
    /// for the whole list. After a failure the server skips the rest (`.aborted`) up to the sync;
    /// an open transaction is then in the failed state and needs a ROLLBACK.
    /// Keep lists modest: in blocking mode a very large pipeline could fill both socket buffers.
    public func pipeline(_ items: [PGPipelineItem]) throws(PGError) -> [PGPipelineOutcome] {
        guard PQenterPipelineMode(rawHandle) == 1 else { throw lastError() }
        defer { _ = PQexitPipelineMode(rawHandle) }
        for item in items {
            let sent: Int32
            switch item {
            case .prepared(let name, let params):
                sent = withParams(params) { count, values in PQsendQueryPrepared(rawHandle, name, count, values, nil, nil, 0) }
            case .sql(let text):
                sent = PQsendQueryParams(rawHandle, text, 0, nil, nil, nil, nil, 0)
            }
            guard sent == 1 else { throw lastError() }
        }
        guard PQpipelineSync(rawHandle) == 1 else { throw lastError() }
        var outcomes: [PGPipelineOutcome] = []
        outcomes.reserveCapacity(items.count)
        for _ in items {
            // A result owed but none came: the server went away mid-pipeline (a shutdown, a kill),
            // whatever PQstatus says yet. Nothing after this is known, so it is a connection failure.
            guard let result = PQgetResult(rawHandle) else { throw brokenPipeline() }
            switch PQresultStatus(result) {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
                outcomes.append(.ok(PGResult(result)))
            case PGRES_PIPELINE_ABORTED:
                PQclear(result)
                outcomes.append(.aborted)
            default:
                let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
                let message = errorText(PQresultErrorMessage(result))
                PQclear(result)
                outcomes.append(.failed(PGError(kind: PQstatus(rawHandle) == CONNECTION_OK ? .statement : .connection,
                                                sqlState: state, message: message)))
            }
            // Each query's results end with a NULL.
            while let extra = PQgetResult(rawHandle) { PQclear(extra) }
        }
        // The sync point.
        if let sync = PQgetResult(rawHandle) {
            let ok = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
            PQclear(sync)
            if !ok { throw lastError() }
        } else {
            throw brokenPipeline()
        }
        return outcomes
    }

    private func brokenPipeline() -> PGError {
        PGError(kind: .connection, sqlState: nil, message: errorText(PQerrorMessage(rawHandle)))
    }

    private func lastError() -> PGError {
        PGError(kind: PQstatus(rawHandle) == CONNECTION_OK ? .statement : .connection, sqlState: nil,
                message: errorText(PQerrorMessage(rawHandle)))
    }
}
