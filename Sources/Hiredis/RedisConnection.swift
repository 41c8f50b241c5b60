/// A blocking Redis connection: one server (`redis://`, `unix://`) or a Redis Cluster
/// (`redis-cluster://`), chosen by the endpoint, behind one API. Not thread-safe: owned by one
/// thread at a time.
public final class RedisConnection {
    private enum Backend {
        case node(RedisNode)
        case cluster(RedisCluster)
    }

    private let backend: Backend
    public let endpoint: RedisEndpoint
    /// `pipeline(count:writing:commands:)`'s block, kept for the next call unless a burst grew it
    /// past `keptBlockBytes`.
    private var block: [UInt8] = []
    private static let keptBlockBytes = 1 << 20

    /// Connects, authenticates and selects the database (a cluster: reads the slot map from the first
    /// seed that answers); every later command is bounded by `timeoutMs`.
    public init(endpoint: RedisEndpoint, timeoutMs: Int = 2000) throws(RedisError) {
        self.endpoint = endpoint
        if case .cluster(let seeds) = endpoint.address {
            backend = .cluster(try RedisCluster(endpoint: endpoint, seeds: seeds, timeoutMs: timeoutMs))
        } else {
            backend = .node(try RedisNode(endpoint: endpoint, timeoutMs: timeoutMs))
        }
    }

    /// True once the connection cannot be used any more: drop it and open a new one. One node: an
    /// I/O error or timeout put hiredis in its error state. A cluster: the last call reached no node
    /// (a single dead node is reconnected inside, and fails only its own commands meanwhile).
    public var isBroken: Bool {
        switch backend {
        case .node(let n): n.isBroken
        case .cluster(let c): c.isBroken
        }
    }

    /// Sends one command and waits for its reply. An error reply is returned, not thrown.
    public func command(_ args: [String]) throws(RedisError) -> RedisReply {
        try pipeline([args])[0]
    }

    /// Sends all commands and reads their replies, in order (one round trip per node). On a cluster
    /// a command whose node is unreachable gets an error reply; the call throws only when no
    /// command reached any node.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        switch backend {
        case .node(let n): try n.pipeline(commands)
        case .cluster(let c): try c.pipeline(commands)
        }
    }

    /// As `pipeline(_:)`, for `count` commands the caller writes in RESP itself (`write`, with
    /// `RESP.appendCommandHeader` and `appendArgument`) into a block reused between calls: the cache
    /// writer's hot path, where building argument lists, and a block per round trip, cost most of its
    /// thread. A cluster, which routes each command by its key, is given `commands()`, the same
    /// commands as argument lists. The replies are in order.
    public func pipeline(count: Int, writing write: (inout [UInt8]) -> Void,
                         commands: () -> [[String]]) throws(RedisError) -> [RedisReply] {
        guard count > 0 else { return [] }
        switch backend {
        case .node(let n):
            block.removeAll(keepingCapacity: true)
            write(&block)
            defer { if block.capacity > Self.keptBlockBytes { block = [] } }
            return try n.pipeline(encoded: block, count: count)
        case .cluster(let c):
            return try c.pipeline(commands())
        }
    }
}
