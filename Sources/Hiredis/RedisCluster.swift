import Glibc

/// A Redis Cluster client over blocking hiredis connections, one per node, opened on demand. A
/// pipeline is split by slot into one pipeline per master, all written before any reply is read,
/// and the replies come back in the caller's order. MOVED updates the slot map (then a full
/// CLUSTER SLOTS refresh) and resends; ASK resends once to the named node after ASKING.
///
/// A master that cannot be reached fails only its own commands, with an error reply, so the
/// caller's per-reply checks keep those writes owed; when no command reached any node the call
/// throws, as a dead single node does. Not thread-safe: owned by one thread at a time.
final class RedisCluster {
    let endpoint: RedisEndpoint
    private let seeds: [RedisEndpoint.Seed]
    private let timeoutMs: Int
    private var map: RedisSlotMap
    private var nodes: [RedisEndpoint.Seed: RedisNode] = [:]
    /// When a node that refused a connection may be tried again (a dead host costs a connect timeout).
    private var retryAt: [RedisEndpoint.Seed: UInt64] = [:]
    private var refreshDue = false
    private var lastRefresh: UInt64 = 0
    /// At most one CLUSTER SLOTS per interval while a node is down (each failing call asks for one).
    static let refreshIntervalNanos: UInt64 = 100_000_000
    private(set) var isBroken = false
    static let reconnectWaitNanos: UInt64 = 200_000_000
    static let maxRedirects = 5

    init(endpoint: RedisEndpoint, seeds: [RedisEndpoint.Seed], timeoutMs: Int) throws(RedisError) {
        self.endpoint = endpoint
        self.seeds = seeds
        self.timeoutMs = timeoutMs
        // The seed that gave the map stays open as that node's connection.
        var opened: [RedisEndpoint.Seed: RedisNode] = [:]
        self.map = try Self.loadMap(from: seeds, endpoint: endpoint, timeoutMs: timeoutMs) { seed throws(RedisError) -> RedisNode in
            let node = try RedisNode(endpoint: endpoint.node(seed), timeoutMs: timeoutMs)
            opened[seed] = node
            return node
        }
        self.nodes = opened
    }

    /// Asks the nodes in turn for CLUSTER SLOTS; the first valid answer wins.
    private static func loadMap(from candidates: [RedisEndpoint.Seed], endpoint: RedisEndpoint, timeoutMs: Int,
                                connect: (RedisEndpoint.Seed) throws(RedisError) -> RedisNode) throws(RedisError) -> RedisSlotMap {
        var last = "no seed node"
        for seed in candidates {
            do {
                let node = try connect(seed)
                let reply = try node.command(["CLUSTER", "SLOTS"])
                if let map = RedisSlotMap(clusterSlots: reply, replyingHost: seed.host) { return map }
                last = "\(seed): CLUSTER SLOTS answered \(reply.errorText ?? "no slot ranges")"
            } catch {
                last = "\(seed): \(error.message)"
            }
        }
        throw RedisError(kind: .connection, message: "no Redis Cluster node gave a slot map (\(endpoint)); last: \(last)")
    }

    /// Re-reads the slot map from the known masters, then the seeds. Keeps the old map if none answers.
    private func refresh() {
        refreshDue = false
        lastRefresh = monotonicNanos()
        let candidates = map.masters + seeds.filter { !map.masters.contains($0) }
        if let fresh = try? Self.loadMap(from: candidates, endpoint: endpoint, timeoutMs: timeoutMs, connect: { seed throws(RedisError) -> RedisNode in
            try self.node(seed)
        }) { map = fresh }
    }

    private func node(_ seed: RedisEndpoint.Seed) throws(RedisError) -> RedisNode {
        if let n = nodes[seed], !n.isBroken { return n }
        nodes[seed] = nil
        if let at = retryAt[seed], monotonicNanos() < at {
            throw RedisError(kind: .connection, message: "\(seed) unreachable (waiting before reconnecting)")
        }
        do {
            let n = try RedisNode(endpoint: endpoint.node(seed), timeoutMs: timeoutMs)
            nodes[seed] = n
            retryAt[seed] = nil
            return n
        } catch {
            retryAt[seed] = monotonicNanos() &+ Self.reconnectWaitNanos
            throw error
        }
    }

    /// One command's place in the work: `origin` in the caller's list, `part` for a broadcast.
    private struct Work {
        var origin: Int
        var part: Int
        var args: [String]
        var target: RedisEndpoint.Seed
        var asking = false
    }

    func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        if refreshDue && monotonicNanos() &- lastRefresh >= Self.refreshIntervalNanos { refresh() }
        var parts = [[RedisReply]](repeating: [], count: commands.count)
        var final = [RedisReply?](repeating: nil, count: commands.count)
        var unreachableParts = [Int](repeating: 0, count: commands.count)
        var work: [Work] = []
        for (i, args) in commands.enumerated() {
            switch RedisClusterSlot.route(args) {
            case .refused(let why):
                final[i] = .error(why)
            case .slot(let slot):
                guard let master = map.master(of: slot) else {
                    final[i] = .error("CLUSTERDOWN Hash slot \(slot) not served (client slot map)")
                    refreshDue = true
                    continue
                }
                work.append(Work(origin: i, part: 0, args: args, target: master))
            case .anyNode:
                // A master that is not known to be down.
                let target = map.masters.first { retryAt[$0] == nil } ?? map.masters[0]
                work.append(Work(origin: i, part: 0, args: args, target: target))
            case .everyMaster:
                parts[i] = [RedisReply](repeating: .null, count: map.masters.count)
                for (p, master) in map.masters.enumerated() { work.append(Work(origin: i, part: p, args: args, target: master)) }
            }
        }
        var round = 0
        while !work.isEmpty {
            round += 1
            var again: [Work] = []
            for (item, reply) in run(work) {
                if case .error(let e) = reply, round <= Self.maxRedirects,
                   let redirect = RedisRedirect(error: e, replyingHost: item.target.host) {
                    var next = item
                    next.target = redirect.node
                    next.asking = redirect.kind == .ask
                    if redirect.kind == .moved {
                        map.move(redirect.slot, to: redirect.node)
                        refreshDue = true
                    }
                    again.append(next)
                    continue
                }
                if case .error(let e) = reply, e.hasPrefix(Self.unreachableMark) { unreachableParts[item.origin] += 1 }
                if parts[item.origin].isEmpty { final[item.origin] = reply } else { parts[item.origin][item.part] = reply }
            }
            work = again
        }
        for i in commands.indices where final[i] == nil {
            final[i] = Self.combine(commands[i][0].uppercased(), parts[i])
        }
        // Broken (the caller reconnects, re-reading the map from the seeds) only when nothing got through.
        isBroken = !commands.isEmpty && commands.indices.allSatisfy { unreachableParts[$0] > 0 && unreachableParts[$0] >= max(1, parts[$0].count) }
        if isBroken {
            let first = final.lazy.compactMap { $0?.errorText }.first ?? ""
            throw RedisError(kind: .connection, message: "no Redis Cluster node reachable (\(endpoint)): \(first)")
        }
        return final.map { $0 ?? .null }
    }

    static let unreachableMark = "CLUSTERDOWN unreachable node "

    /// Sends each node its commands (all nodes written first), then reads every node's replies.
    private func run(_ work: [Work]) -> [(Work, RedisReply)] {
        var byNode: [RedisEndpoint.Seed: [Int]] = [:]
        var order: [RedisEndpoint.Seed] = []
        for (w, item) in work.enumerated() {
            if byNode[item.target] == nil { order.append(item.target) }
            byNode[item.target, default: []].append(w)
        }
        var results = [RedisReply](repeating: .null, count: work.count)
        var sent: [(RedisEndpoint.Seed, RedisNode, [Int])] = []
        func fail(_ seed: RedisEndpoint.Seed, _ indices: [Int], _ error: RedisError) {
            nodes[seed] = nil
            refreshDue = true
            for w in indices { results[w] = .error(Self.unreachableMark + "\(seed): \(error.message)") }
        }
        for seed in order {
            let indices = byNode[seed]!
            do {
                let n = try node(seed)
                try n.send(indices.flatMap { work[$0].asking ? [["ASKING"], work[$0].args] : [work[$0].args] })
                sent.append((seed, n, indices))
            } catch {
                fail(seed, indices, error)
            }
        }
        for (seed, n, indices) in sent {
            do {
                let replies = try n.receive(indices.reduce(0) { $0 + (work[$1].asking ? 2 : 1) })
                var r = 0
                for w in indices {
                    if work[w].asking { r += 1 }  // ASKING's own +OK
                    results[w] = replies[r]
                    r += 1
                }
            } catch {
                fail(seed, indices, error)
            }
        }
        return work.indices.map { (work[$0], results[$0]) }
    }

    /// One reply for a command every master answered.
    static func combine(_ name: String, _ replies: [RedisReply]) -> RedisReply {
        if let error = replies.first(where: { if case .error = $0 { true } else { false } }) { return error }
        switch name {
        case "DBSIZE": return .integer(replies.reduce(0) { $0 + ($1.integer ?? 0) })
        case "KEYS": return .array(replies.flatMap { $0.array ?? [] })
        default: return replies.first ?? .null
        }
    }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension RedisReply {
    var errorText: String? {
        if case .error(let e) = self { return e }
        return nil
    }
}
