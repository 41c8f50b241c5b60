/// Where Redis listens, parsed from `redis://[:password@]host[:port][/db]`, `unix:///path/to.sock[?db=N]`
/// or `redis-cluster://[:password@]host:port[,host:port…]` (seed nodes of a Redis Cluster; db 0 only).
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// Any reachable seed gives the slot map (CLUSTER SLOTS); the other nodes are found through it.
        case cluster(seeds: [Seed])
    }

    public struct Seed: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { "\(host):\(port)" }
    }

    public var address: Address
    public var database: Int
    public var password: String?

    public init(address: Address, database: Int = 0, password: String? = nil) {
        self.address = address
        self.database = database
        self.password = password
    }

    public init?(url: String) {
        if url.hasPrefix("unix://") {
            var rest = String(url.dropFirst("unix://".count))
            var db = 0
            if let q = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: q)...]
                rest = String(rest[..<q])
                for pair in query.split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    if kv.count == 2, kv[0] == "db" { guard let d = Int(kv[1]) else { return nil }; db = d }
                }
            }
            guard rest.hasPrefix("/") else { return nil }
            self.init(address: .unix(path: rest), database: db)
        } else if url.hasPrefix("redis://") {
            guard let (password, hosts, db) = Self.split(url.dropFirst("redis://".count)),
                  let seed = Self.seed(hosts) else { return nil }
            self.init(address: .tcp(host: seed.host, port: seed.port), database: db, password: password)
        } else if url.hasPrefix("redis-cluster://") {
            // A cluster has only database 0 (SELECT is refused there).
            guard let (password, hosts, db) = Self.split(url.dropFirst("redis-cluster://".count)), db == 0 else { return nil }
            var seeds: [Seed] = []
            for part in hosts.split(separator: ",", omittingEmptySubsequences: false) {
                guard !part.isEmpty, let seed = Self.seed(part) else { return nil }
                seeds.append(seed)
            }
            guard !seeds.isEmpty else { return nil }
            self.init(address: .cluster(seeds: seeds), database: 0, password: password)
        } else {
            return nil
        }
    }

    /// `[:password@]hosts[/db]` into its parts.
    private static func split(_ text: Substring) -> (String?, Substring, Int)? {
        var rest = text
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            if let colon = userinfo.firstIndex(of: ":") { password = String(userinfo[userinfo.index(after: colon)...]) }
            rest = rest[rest.index(after: at)...]
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let d = rest[rest.index(after: slash)...]
            if !d.isEmpty { guard let n = Int(d) else { return nil }; db = n }
            rest = rest[..<slash]
        }
        return (password, rest, db)
    }

    /// `host[:port]`; port 6379 and host 127.0.0.1 when left out.
    private static func seed(_ text: Substring) -> Seed? {
        var host = String(text)
        var port = 6379
        if let colon = text.lastIndex(of: ":") {
            guard let p = Int(text[text.index(after: colon)...]) else { return nil }
            port = p
            host = String(text[..<colon])
        }
        if host.isEmpty { host = "127.0.0.1" }
        return Seed(host: host, port: port)
    }

    /// The same credentials for one node of a cluster.
    func node(_ seed: Seed) -> RedisEndpoint {
        RedisEndpoint(address: .tcp(host: seed.host, port: seed.port), database: 0, password: password)
    }

    /// `text` with every occurrence of the password masked (hiredis and Redis error texts pass
    /// through this before they can reach a log).
    public func redact(_ text: String) -> String {
        guard let password, !password.isEmpty else { return text }
        let needle = Array(password.utf8), bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if i + needle.count <= bytes.count, bytes[i..<(i + needle.count)].elementsEqual(needle) {
                out.append(contentsOf: "***".utf8)
                i += needle.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The endpoint without its password, for logs and errors.
    public var description: String {
        switch address {
        case .tcp(let host, let port):
            return "redis://\(password == nil ? "" : ":***@")\(host):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(path)\(database == 0 ? "" : "?db=\(database)")"
        case .cluster(let seeds):
            return "redis-cluster://\(password == nil ? "" : ":***@")" + seeds.map(\.description).joined(separator: ",")
        }
    }
}
