import EngineStoreWire
import Foundation

/// An in-memory `PersistenceService` with the server's semantics, for engine unit tests:
/// one open position per (model, SYMBOL), partial updates, required open fields, idempotency keys
/// (the same key returns the first answer; the same key with another payload is a conflict).
public actor InMemoryPersistence: PersistenceService {
    public struct StoredPosition: Sendable, Equatable {
        public var id: String
        public var request: SavePositionRequest
        public var status: String
    }

    public private(set) var positions: [StoredPosition] = []
    private var replies: [String: (SavePositionRequest, SavePositionResponse)] = [:]
    private var clock: Int64 = 1_700_000_000_000

    public init() {}

    public func health() async throws -> HealthResponse {
        HealthResponse(status: .ok, postgres: ComponentHealth(ok: true, latencyMicros: 0),
                       redis: ComponentHealth(ok: true, latencyMicros: 0), uptimeMs: 0, openConnections: 1,
                       instanceID: "in-memory", serverVersion: "fake")
    }

    public func savePosition(_ request: SavePositionRequest) async throws -> SavePositionResponse {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let (previous, response) = replies[r.idempotencyKey] {
            guard previous == r else {
                throw EngineStoreError(code: .conflict, message: "idempotency key reused with a different request", retryable: false)
            }
            return response
        }
        guard !r.modelID.isEmpty else { throw invalid("model_id", "must not be empty") }
        guard !r.symbol.isEmpty else { throw invalid("symbol", "must not be empty") }
        for (value, name) in [(r.quantity, "quantity"), (r.entryPrice, "entry_price")] {
            if let v = value, !(v.isFinite && v > 0) { throw invalid(name, "must be positive and finite") }
        }
        let symbol = r.symbol.uppercased()
        clock += 1
        let response: SavePositionResponse
        if let i = positions.firstIndex(where: { $0.status == "open" && $0.request.modelID == r.modelID && $0.request.symbol == symbol }) {
            positions[i].request.merge(r)
            response = SavePositionResponse(positionID: positions[i].id, opened: false, updatedAtMs: clock)
        } else {
            if r.exchangeProvider == nil { throw invalid("exchange_provider", "required to open a position") }
            if r.side == nil { throw invalid("side", "required to open a position") }
            if r.quantity == nil { throw invalid("quantity", "required to open a position") }
            if r.entryPrice == nil { throw invalid("entry_price", "required to open a position") }
            if r.entryTimeMs == nil { throw invalid("entry_time_ms", "required to open a position") }
            var stored = r
            stored.symbol = symbol
            let id = "\(r.modelID)|\(symbol)|\(r.entryTimeMs ?? 0)|\(positions.count)"
            positions.append(StoredPosition(id: id, request: stored, status: "open"))
            response = SavePositionResponse(positionID: id, opened: true, updatedAtMs: clock)
        }
        replies[r.idempotencyKey] = (r, response)
        return response
    }

    /// Open positions of a model, as the server's hash would hold them.
    public func openPositions(model: String) -> [StoredPosition] {
        positions.filter { $0.status == "open" && $0.request.modelID == model }
    }

    private func invalid(_ field: String, _ reason: String) -> EngineStoreError {
        EngineStoreError(code: .invalidArgument, message: "\(field): \(reason)", retryable: false, field: field)
    }
}

extension SavePositionRequest {
    /// Applies the fields `other` sets (a partial update).
    mutating func merge(_ o: SavePositionRequest) {
        exchangeProvider = o.exchangeProvider ?? exchangeProvider
        side = o.side ?? side
        quantity = o.quantity ?? quantity
        entryPrice = o.entryPrice ?? entryPrice
        entryTimeMs = o.entryTimeMs ?? entryTimeMs
        leverage = o.leverage ?? leverage
        confidence = o.confidence ?? confidence
        riskUSD = o.riskUSD ?? riskUSD
        margin = o.margin ?? margin
        entryOID = o.entryOID ?? entryOID
        tpOID = o.tpOID ?? tpOID
        slOID = o.slOID ?? slOID
        waitForFill = o.waitForFill ?? waitForFill
        exitPlanJSON = o.exitPlanJSON ?? exitPlanJSON
        indexJSON = o.indexJSON ?? indexJSON
        currentPrice = o.currentPrice ?? currentPrice
        unrealizedPnl = o.unrealizedPnl ?? unrealizedPnl
        liquidationPrice = o.liquidationPrice ?? liquidationPrice
        commission = o.commission ?? commission
        slippage = o.slippage ?? slippage
    }
}
