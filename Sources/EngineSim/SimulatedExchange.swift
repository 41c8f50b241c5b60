import Foundation

/// Deterministic random source (SplitMix64) so a seed reproduces a run.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A toy perpetuals exchange: random-walk prices per symbol, fills with slippage and a taker fee.
public actor SimulatedExchange {
    public struct Fill: Sendable {
        public let orderID: Int64
        public let tradeID: Int64
        public let price: Double
        public let size: Double
        public let fee: Double
    }

    public nonisolated let symbols: [String]
    public private(set) var prices: [String: Double]
    private var rng: SeededRandom
    private var nextOrderID: Int64 = 1_000_000
    private let feeRate = 0.00045
    private let slippage = 0.0005
    public private(set) var clockMs: Int64

    public init(symbols: [String], seed: UInt64, startMs: Int64) {
        self.symbols = symbols
        self.rng = SeededRandom(seed: seed ^ 0xE4C4)
        self.clockMs = startMs
        var p: [String: Double] = [:]
        for (i, s) in symbols.enumerated() { p[s] = 100 * Double(i + 1) }
        self.prices = p
    }

    /// Moves every price one step (±0.5 % at most) and the clock by `ms`; returns the new ticks.
    public func step(ms: Int64) -> [(symbol: String, price: Double, ts: Int64)] {
        clockMs += max(1, ms)
        return symbols.map { s in
            let change = Double.random(in: -0.005...0.005, using: &rng)
            let price = max(0.01, (prices[s] ?? 100) * (1 + change))
            prices[s] = price
            return (s, price, clockMs)
        }
    }

    public func price(_ symbol: String) -> Double { prices[symbol] ?? 100 }
    public var now: Int64 { clockMs }

    /// Fills a market order: buying pays up, selling receives less.
    public func fill(symbol: String, buy: Bool, size: Double) -> Fill {
        nextOrderID += 1
        let mid = prices[symbol] ?? 100
        let price = mid * (buy ? 1 + slippage : 1 - slippage)
        return Fill(orderID: nextOrderID, tradeID: nextOrderID * 10, price: price, size: size, fee: price * size * feeRate)
    }

    /// Order ids for stop-loss / take-profit orders.
    public func placeTrigger() -> Int64 {
        nextOrderID += 1
        return nextOrderID
    }
}
