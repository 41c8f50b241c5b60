import Foundation
import Hiredis
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway 3-master Redis Cluster on loopback ports (`redis-server --cluster-enabled yes`, joined
/// with `redis-cli --cluster create`), in `/tmp/engine-store-rc-XXXXXX`. Each node keeps an
/// append-only file synced on every write, so a master killed with SIGKILL and started again on its
/// port and nodes.conf comes back with what it acknowledged. A watchdog stops the nodes and deletes
/// the directory after the test process exits.
public final class TestRedisCluster: Sendable {
    public static let masters = 3
    public let ports: [Int]
    let root: String
    private let redisServer: String
    private let processes: Mutex<[Process?]>

    /// `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`
    public var url: String { "redis-cluster://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") }
    /// One node on its own (not cluster-aware): for per-node checks such as DBSIZE.
    public func nodeURL(_ i: Int) -> String { "redis://127.0.0.1:\(ports[i])" }

    private static let startup = Mutex<Task<TestRedisCluster, any Error>?>(nil)

    /// One cluster per test process, started on first use; tests isolate with their own namespace.
    public static func shared() async throws -> TestRedisCluster {
        let task = startup.withLock { slot -> Task<TestRedisCluster, any Error> in
            if let slot { return slot }
            let task = Task.detached { try await offPool { try TestRedisCluster.start() } }
            slot = task
            return task
        }
        return try await task.value
    }

    /// A cluster of its own, for tests that kill its nodes.
    public static func privateInstance() async throws -> TestRedisCluster {
        try await offPool { try TestRedisCluster.start() }
    }

    private init(root: String, ports: [Int], redisServer: String) {
        self.root = root
        self.ports = ports
        self.redisServer = redisServer
        self.processes = Mutex([Process?](repeating: nil, count: ports.count))
    }

    static func start() throws -> TestRedisCluster {
        signal(SIGPIPE, SIG_IGN)
        let fm = FileManager.default
        guard let server = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first(where: fm.isExecutableFile),
              let cli = ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].first(where: fm.isExecutableFile) else {
            throw TestServicesError("redis-server and redis-cli are needed for the Redis Cluster tests (apt-get install redis-server)")
        }
        var lastError: any Error = TestServicesError("no attempt")
        // Free ports are picked by probing; another process may take one meanwhile, so retry.
        for _ in 0..<3 {
            var template = Array("/tmp/engine-store-rc-XXXXXX".utf8CString)
            guard let root = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!).map { String(cString: $0) } }) else {
                throw TestServicesError("mkdtemp failed")
            }
            let cluster = TestRedisCluster(root: root, ports: try freePorts(masters), redisServer: server)
            do {
                try cluster.launchWatchdog()
                for i in 0..<masters {
                    try fm.createDirectory(atPath: cluster.dir(i), withIntermediateDirectories: true)
                    try cluster.startNode(i)
                }
                try cluster.run(cli, ["--cluster", "create"] + cluster.ports.map { "127.0.0.1:\($0)" }
                                + ["--cluster-replicas", "0", "--cluster-yes"])
                try cluster.waitUntilHealthy()
                return cluster
            } catch {
                lastError = error
                cluster.stopAll()
            }
        }
        throw lastError
    }

    func dir(_ i: Int) -> String { "\(root)/n\(i)" }

    /// Starts node `i` on its port with its nodes.conf and append-only file; returns once it answers PING.
    public func startNode(_ i: Int) throws {
        try processes.withLock { procs in
            if let p = procs[i], p.isRunning { return }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: redisServer)
            process.arguments = [
                "--port", String(ports[i]), "--bind", "127.0.0.1", "--daemonize", "no", "--protected-mode", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--dir", dir(i), "--pidfile", "\(dir(i))/redis.pid", "--logfile", "\(dir(i))/redis.log",
            ]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try ChildProcess.spawn(process)
            procs[i] = process
            try poll("node \(i) answering PING", while: { process.isRunning }) {
                (try? RedisConnection(endpoint: RedisEndpoint(url: nodeURL(i))!, timeoutMs: 500).command(["PING"])) == .status("PONG")
            }
        }
    }

    /// SIGKILL to node `i`, returning once it has exited.
    public func killNode(_ i: Int) throws {
        try processes.withLock { procs in
            guard let p = procs[i], p.isRunning else { return }
            kill(p.processIdentifier, SIGKILL)
            try poll("node \(i) exiting") { !p.isRunning }
            unlink("\(dir(i))/redis.pid")  // so the watchdog never signals a reused pid
            procs[i] = nil
        }
    }

    /// Every node says `cluster_state:ok` and knows every master.
    public func waitUntilHealthy() throws {
        try poll("cluster_state:ok on every node") {
            ports.indices.allSatisfy { i in
                guard let c = try? RedisConnection(endpoint: RedisEndpoint(url: nodeURL(i))!, timeoutMs: 1000),
                      let info = try? c.command(["CLUSTER", "INFO"]).text else { return false }
                return info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:\(ports.count)")
            }
        }
    }

    private func poll(_ what: String, timeout: Duration = .seconds(60), while alive: () -> Bool = { true },
                      _ done: () throws -> Bool) throws {
        let deadline = ContinuousClock.now + timeout
        while try !done() {
            guard alive() else { throw TestServicesError("\(what): the process exited\n\(LocalCluster.tail(of: "\(root)/n0/redis.log"))") }
            guard ContinuousClock.now < deadline else { throw TestServicesError("timed out waiting for \(what)") }
            usleep(50_000)
        }
    }

    private func run(_ tool: String, _ args: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        let log = "\(root)/redis-cli.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        try ChildProcess.spawn(process)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestServicesError("\(tool) \(args.joined(separator: " ")) failed:\n\(LocalCluster.tail(of: log))")
        }
    }

    private func stopAll() {
        processes.withLock { procs in
            for case let p? in procs where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Ports p whose cluster bus port p+10000 is free too.
    static func freePorts(_ n: Int) throws -> [Int] {
        var found: [Int] = []
        var tries = 0
        while found.count < n {
            tries += 1
            guard tries < 1000 else { throw TestServicesError("no free loopback ports for a Redis Cluster") }
            let p = Int.random(in: 20000..<30000)
            if !found.contains(p), canBind(p), canBind(p + 10000) { found.append(p) }
        }
        return found
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Waits for this process to exit, then kills the nodes (pid files) and deletes the directory.
    private func launchWatchdog() throws {
        let script = #"""
            trap '' INT HUP PIPE
            P="$1"; D="$2"
            while [ -d "/proc/$P" ] && [ "$(sed 's/^.*) //' /proc/$P/stat 2>/dev/null | cut -d' ' -f1)" != Z ]; do sleep 0.5; done
            for f in "$D"/n*/redis.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
            case "$D" in /tmp/engine-store-rc-*) rm -rf "$D" ;; esac
            """#
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "engine-store-rc-watchdog", String(getpid()), root]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ChildProcess.spawn(process)
    }
}
