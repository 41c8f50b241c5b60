@testable import EngineStoreServer
import Testing

/// Symbols are stored upper-case; one already upper-case is kept as it came (no copy).
@Suite struct ValidateSymbolTests {
    @Test(arguments: [("btc", "BTC"), ("BTC", "BTC"), ("eTh-usd.x/y_z9", "ETH-USD.X/Y_Z9"), ("1000PEPE", "1000PEPE"), ("a", "A"),
                      ("z_", "Z_"), (String(repeating: "q", count: 32), String(repeating: "Q", count: 32))])
    func symbolsComeBackUpperCase(_ input: String, _ expected: String) throws {
        #expect(try Validate.symbol(input) == expected)
    }

    @Test(arguments: ["", "bt c", "é", "btc!", "`", "{", String(repeating: "Q", count: 33)])
    func badSymbolsAreRefusedNamingTheField(_ input: String) {
        let error = #expect(throws: ServiceError.self) { try Validate.symbol(input, "ticks.symbol") }
        #expect(error?.field == "ticks.symbol")
    }
}
