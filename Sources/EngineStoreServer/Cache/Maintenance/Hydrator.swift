import EngineStoreWire
import Hiredis
import Logging

/// Rebuilds every key of the given (or all) models and traders from Postgres, under a Redis lock
/// so that only one instance hydrates at a time.
struct Hydrator {
    /// How long the lock lives if its holder dies before releasing it.
    static let lockTTLMs = 120_000
    /// Deletes the lock only if it still holds our token (it may have expired and been taken since).
    static let releaseLockScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

    let connections: MaintenanceConnections
    let rebuilder: CacheRebuilder
    let instanceID: String
    let hooks: TestHooks
    private var keys: CacheKeys { rebuilder.keys }

    init(connections: MaintenanceConnections, rebuilder: CacheRebuilder, instanceID: String, hooks: TestHooks) {
        self.connections = connections
        self.rebuilder = rebuilder
        self.instanceID = instanceID
        self.hooks = hooks
    }

    /// The hydrate at start: everything, logged.
    func warmUp(_ s: PostgresSession, _ r: RedisConnection) {
        do {
            let result = try run(HydrateRequest(), s, r)
            connections.logger.info("cache warmed up", metadata: ["ran": "\(result.ran)", "models": "\(result.models)",
                                                                  "keys": "\(result.keysWritten)", "ms": "\(result.tookMs)"])
        } catch { connections.failed(error, "hydrate") }
    }

    func run(_ request: HydrateRequest, _ s: PostgresSession, _ r: RedisConnection) throws -> HydrateResponse {
        let start = monotonicNanos()
        let lock = keys.namespace + "lock:hydrate"
        let token = instanceID + "-" + String(start)
        guard try r.command(["SET", lock, token, "NX", "PX", String(Self.lockTTLMs)]) == .status("OK") else {
            return HydrateResponse(ran: false, models: 0, keysWritten: 0, tookMs: 0)
        }
        hooks.hydrateLocked?()
        defer {
            _ = try? r.command(["EVAL", Self.releaseLockScript, "1", lock, token])
        }
        let everything = request.models.isEmpty && request.traders.isEmpty
        let models = everything ? try s.rows(CacheRebuilder.ModelIDs()) : request.models
        var written = 0
        for model in models {
            var batch = try rebuilder.hydrate(s, model: model)
            for kind in CachedDocuments.all where kind.perModel {
                batch.append(contentsOf: try kind.hydrate(s, r, subject: model, rebuilder))
            }
            written += try connections.apply(batch, r)
        }
        for kind in CachedDocuments.all where !kind.perModel {
            for subject in try kind.hydrateSubjects(request, everything: everything, s) {
                written += try connections.apply(try kind.hydrate(s, r, subject: subject, rebuilder), r)
            }
        }
        if everything || !models.isEmpty { written += try connections.apply(try rebuilder.hydrateLeaderboard(s), r) }
        return HydrateResponse(ran: true, models: UInt32(models.count), keysWritten: UInt32(written),
                               tookMs: (monotonicNanos() - start) / 1_000_000)
    }
}
