import LibPQ
import TestHarness
import Testing

/// Rows are read by column name (`PGResult.columnIndex`): the lookup starts after the last hit, so it
/// must give the same answer in any order, and the first column of a repeated name.
@Suite struct PGResultTests {
    @Test func columnsAreFoundByNameInAnyOrder() async throws {
        let services = try await TestServices.shared()
        let pg = try PGConnection(conninfo: services.postgresAdminURL)
        let r = try pg.exec("SELECT 1 AS id, 2 AS symbol, 3 AS side, 4 AS quantity")
        for order in [["id", "symbol", "side", "quantity"], ["quantity", "side", "symbol", "id"], ["side", "side", "id", "quantity"]] {
            #expect(order.map(r.columnIndex) == order.map { ["id", "symbol", "side", "quantity"].firstIndex(of: $0)! })
        }
        #expect(r.columnIndex("missing") == -1)
        #expect(r.columnIndex("quantity") == 3)
        #expect(r.columnIndex("ID") == -1)  // exact names, no case folding
        let repeated = try pg.exec("SELECT 1 AS a, 2 AS b, 3 AS a, 4 AS c")
        #expect(["c", "a", "b", "a", "c", "a"].map(repeated.columnIndex) == [3, 0, 1, 0, 3, 0])
        #expect(repeated.string(0, repeated.columnIndex("a")) == "1")
    }
}
