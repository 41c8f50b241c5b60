import LibPQ

extension PGError {
    /// A statement error caused by the values a request carried, answered `invalid_argument` (never
    /// `internal`, which is alertable): class 22, data exception (bad JSON, a number out of range, an
    /// untranslatable character), and class 54, program limit exceeded (54001 "stack depth limit
    /// exceeded" from a deeply nested value, 54000 a value too large for an index or a type). The
    /// message keeps only Postgres's first line; `field` is absent because Postgres does not say which
    /// parameter it was (the server's own checks, run first, name it).
    var rejectedInput: ServiceError? {
        guard kind == .statement, let state = sqlState else { return nil }
        let first = message.split(separator: "\n").first.map(String.init) ?? ""
        if state.hasPrefix("22") {
            return ServiceError(.invalidArgument, "value rejected by the database: \(first)")
        }
        if state.hasPrefix("54") {
            return ServiceError(.invalidArgument, "value exceeds a database limit (SQLSTATE \(state)): \(first)")
        }
        return nil
    }
}
