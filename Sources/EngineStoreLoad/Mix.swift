/// The RPCs the load tester can drive.
public enum Operation: String, CaseIterable, Sendable, Comparable {
    case savePosition = "save-position"
    /// SavePosition that always opens a new position (the benchmark's write).
    case openPosition = "open-position"
    /// SavePosition over a small key space shared by every worker (`--models` × `--symbols`): after
    /// the first open of each key, updates of an open row (the update-heavy benchmark's write).
    case updatePosition = "update-position"
    case closePosition = "close-position"
    case snapshot
    case tradeEvent = "trade-event"
    case ticks
    case health
    /// Ping: a round trip that touches neither Postgres nor Redis.
    case noop

    public static func < (a: Operation, b: Operation) -> Bool { a.ordinal < b.ordinal }

    /// The position in `allCases` (declaration order).
    public var ordinal: Int {
        switch self {
        case .savePosition: 0
        case .openPosition: 1
        case .updatePosition: 2
        case .closePosition: 3
        case .snapshot: 4
        case .tradeEvent: 5
        case .ticks: 6
        case .health: 7
        case .noop: 8
        }
    }
}

/// Weighted choice of operations, parsed from `save-position=5,close-position=2,…`.
public struct Mix: Sendable, Equatable, CustomStringConvertible {
    public let weights: [(Operation, Int)]
    private let total: Int

    public static func == (a: Mix, b: Mix) -> Bool { a.description == b.description }

    public init(_ weights: [(Operation, Int)]) throws(LoadError) {
        let kept = weights.filter { $0.1 > 0 }
        guard !kept.isEmpty else { throw LoadError("--mix needs at least one operation with a positive weight") }
        self.weights = kept
        self.total = kept.reduce(0) { $0 + $1.1 }
    }

    public init(parsing text: String) throws(LoadError) {
        var weights: [(Operation, Int)] = []
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let op = Operation(rawValue: kv[0]) else {
                throw LoadError("unknown operation '\(kv[0])' in --mix (known: \(Operation.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let weight = kv.count == 2 ? Int(kv[1]) : 1
            guard let weight, weight >= 0 else { throw LoadError("bad weight for \(op.rawValue) in --mix") }
            weights.append((op, weight))
        }
        try self.init(weights)
    }

    public static let `default` = try! Mix(parsing: "save-position=5,close-position=2,snapshot=1,trade-event=1,ticks=1,health=0")

    public func pick<R: RandomNumberGenerator>(_ rng: inout R) -> Operation {
        var n = Int.random(in: 0..<total, using: &rng)
        for (op, w) in weights {
            if n < w { return op }
            n -= w
        }
        return weights[0].0
    }

    public var description: String { weights.map { "\($0.0.rawValue)=\($0.1)" }.joined(separator: ",") }
}

public struct LoadError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

import Foundation
