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

    /// As `pipeline(_:)`, for values that write their commands in RESP themselves: to one server they
    /// go as written, with no argument lists built (a cluster, which routes each command by its key,
    /// is given their `commands`). The replies are in order, `commandCount` of them per item.
    public func pipeline<Items: Sequence>(writing items: Items) throws(RedisError) -> [RedisReply]
    where Items.Element: RESPWritable {
        switch backend {
        case .node(let n):
            var block: [UInt8] = []
            var count = 0
            for item in items {
                item.appendRESP(to: &block)
                count += item.commandCount
            }
            return try n.pipeline(encoded: block, count: count)
        case .cluster(let c):
            let commands = items.flatMap(\.commands)
            return commands.isEmpty ? [] : try c.pipeline(commands)
        }
    }
}

/// Redis commands that can write themselves in RESP (`RESP.appendCommandHeader`, `appendArgument`).
/// `appendRESP` must write exactly `RESP.commands(commands)`, and `commandCount` be `commands.count`.
public protocol RESPWritable {
    func appendRESP(to out: inout [UInt8])
    var commandCount: Int { get }
    /// The same commands as argument lists.
    var commands: [[String]] { get }
}
