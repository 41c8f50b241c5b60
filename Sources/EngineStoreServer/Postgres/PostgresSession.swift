import LibPQ

/// A named SQL statement, prepared once per connection on first use. SQL is constant text;
/// every value travels as a parameter.
struct Statement: Sendable {
    let name: String
    let sql: String
}

/// A worker's connection plus the statements already prepared on it.
final class PostgresSession {
    let connection: PGConnection
    private var prepared: Set<String> = []

    init(connection: PGConnection) { self.connection = connection }

    @discardableResult
    func run(_ statement: Statement, _ params: [String?]) throws(PGError) -> PGResult {
        if !prepared.contains(statement.name) {
            try connection.prepare(statement.name, statement.sql)
            prepared.insert(statement.name)
        }
        return try connection.execPrepared(statement.name, params)
    }

    func exec(_ sql: String) throws(PGError) { try connection.exec(sql) }

    /// Prepares what is not prepared yet (pipeline mode needs statements prepared beforehand).
    func ensurePrepared(_ statements: [Statement]) throws(PGError) {
        for s in statements where !prepared.contains(s.name) {
            try connection.prepare(s.name, s.sql)
            prepared.insert(s.name)
        }
    }
}
