import EngineStoreWire

/// Market data of the in-memory fake: every tick is stored; latest prices only move forward in time.
extension InMemoryPersistence {
    public func ingestPriceTicks(_ request: IngestPriceTicksRequest) async throws -> IngestPriceTicksResponse {
        guard !request.ticks.isEmpty else { throw invalid("ticks", "at least one tick") }
        for t in request.ticks where !(t.price.isFinite && t.price > 0) || t.symbol.isEmpty {
            throw invalid(t.symbol.isEmpty ? "ticks.symbol" : "ticks.price", "invalid tick")
        }
        return try once(request) { r in
            var advanced: UInt32 = 0
            for var t in r.ticks {
                t.symbol = t.symbol.uppercased()
                ticks.append(t)
                let k = t.provider + "|" + t.symbol
                if (latestPrices[k]?.timestampMs ?? .min) < t.timestampMs {
                    advanced += 1
                    latestPrices[k] = t
                }
            }
            return IngestPriceTicksResponse(stored: UInt32(r.ticks.count), latestUpdated: advanced)
        }
    }

    public func upsertMarketAssets(_ request: UpsertMarketAssetsRequest) async throws -> UpsertCountResponse {
        try once(request) { UpsertCountResponse(upserted: UInt32($0.assets.count)) }
    }

    public func upsertAssetContexts(_ request: UpsertAssetContextsRequest) async throws -> UpsertCountResponse {
        try once(request) { UpsertCountResponse(upserted: UInt32($0.contexts.count)) }
    }
}
