import EngineStoreWire

/// Operations: Hydrate (rebuild Redis from Postgres) and CheckConsistency (compare, optionally
/// repair the cache). Both run on the cache-maintenance thread.
struct OperationsRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.hydrate, .checkConsistency, .stats] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        switch method {
        case .stats:
            _ = try StatsRequest.decodeRequest(payload)
            reply.send(StatsResponse(prometheusText: context.metrics.text))
        case .hydrate:
            let r = try HydrateRequest.decodeRequest(payload)
            for m in r.models { try Validate.keyPart(m, "models") }
            for t in r.traders { try Validate.keyPart(t, "traders") }
            context.maintenance.submit(.hydrate(r, reply))
        case .checkConsistency:
            var r = try CheckConsistencyRequest.decodeRequest(payload)
            for m in r.models { try Validate.keyPart(m, "models") }
            for m in r.exchangeModels { try Validate.keyPart(m, "exchange_models") }
            for i in r.exchangePositions.indices {
                try Validate.keyPart(r.exchangePositions[i].modelID, "exchange_positions.model_id")
                r.exchangePositions[i].symbol = try Validate.symbol(r.exchangePositions[i].symbol, "exchange_positions.symbol")
                try Validate.nonNegative(r.exchangePositions[i].quantity, "exchange_positions.quantity")
                if !r.exchangeModels.contains(r.exchangePositions[i].modelID) { r.exchangeModels.append(r.exchangePositions[i].modelID) }
            }
            context.maintenance.submit(.check(r, reply))
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }
}
