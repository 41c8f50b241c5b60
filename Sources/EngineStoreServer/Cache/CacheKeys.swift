/// Redis key names (proto-spec §10.12, Keys), all under one namespace. Model ids go in verbatim; symbols upper-case.
/// No key carries a hash tag: on Redis Cluster every script touches one document and its version
/// companion, which share a slot (docs/cache-consistency.md §5).
struct CacheKeys: Sendable {
    let namespace: String

    func positions(model: String) -> String { namespace + "positions:" + model }
    var tradeStream: String { namespace + "trades:stream" }
    func ingestGuard(tradeID: String) -> String { namespace + "ingest:trade:" + tradeID }
    func analytics(model: String) -> String { namespace + "analytics:" + model }
    func sinceInception(model: String) -> String { namespace + "since_inception:" + model }
    var leaderboard: String { namespace + "leaderboard" }
    var leaderboardCache: String { namespace + "leaderboard:cache" }
    func latestPrice(provider: String, symbol: String) -> String { namespace + "price:latest:" + provider + ":" + symbol }
    func latestPrice(symbol: String) -> String { namespace + "price:latest:" + symbol }
    var cryptoPrices: String { namespace + "crypto_prices" }
    func marketAsset(provider: String, symbol: String) -> String { namespace + "market:asset:" + provider + ":" + symbol }
    /// The companion that holds the versions of `key`'s value (or of each of its hash fields). Its
    /// hash tag is `key` itself, so both land in one Redis Cluster slot.
    func version(of key: String) -> String { namespace + "v:{" + key + "}" }
    func marketContext(provider: String, symbol: String) -> String { namespace + "market:ctx:" + provider + ":" + symbol }
}
