import Glibc

/// How many client connections the descriptor limit (RLIMIT_NOFILE) leaves room for, after what the
/// service needs for itself. Client connections stop at that budget, so a burst of clients can never
/// take the descriptors Postgres and Redis reconnects need.
enum DescriptorLimits {
    /// Backend connections the service opens besides client connections: one per Postgres worker,
    /// the maintenance thread's Postgres and Redis connections, the cache writer and the cache readers.
    static func backendDescriptors(postgresConnections: Int, cacheReaders: Int = 2) -> Int {
        postgresConnections + 1 + 1 + 1 + cacheReaders
    }

    /// Kept free at all times: reconnects overlapping a broken connection, libpq reading `.pgpass` or
    /// certificates, name resolution for TCP hosts, the metrics endpoint's connections.
    static let reserve = 16

    /// What `max-connections` needs: clients, backends, the reserve and the service's own descriptors
    /// (stdio, epoll, eventfd, the listener, the metrics listener, the migrations connection).
    static func needed(maxConnections: Int, postgresConnections: Int) -> Int {
        maxConnections + backendDescriptors(postgresConnections: postgresConnections) + reserve + 16
    }

    /// Client connections left: the soft limit minus the descriptors open now, the backends still to
    /// connect and the reserve.
    static func connectionBudget(softLimit: Int, openNow: Int, postgresConnections: Int) -> Int {
        max(0, softLimit - openNow - backendDescriptors(postgresConnections: postgresConnections) - reserve)
    }

    /// The soft and hard RLIMIT_NOFILE (RLIM_INFINITY as Int.max).
    static func current() -> (soft: Int, hard: Int) {
        var r = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return (1024, 1024) }
        func int(_ v: rlim_t) -> Int { v > rlim_t(Int.max) ? Int.max : Int(v) }  // RLIM_INFINITY is ~0
        return (int(r.rlim_cur), int(r.rlim_max))
    }

    /// Raises the soft limit toward the hard one, as far as `needed` asks. Returns the limits before and
    /// after (after = before when nothing changed or setrlimit failed).
    static func raise(toward needed: Int) -> (before: Int, after: Int, hard: Int) {
        let (soft, hard) = current()
        guard soft < needed else { return (soft, soft, hard) }
        var r = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return (soft, soft, hard) }
        r.rlim_cur = rlim_t(min(needed, hard))
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &r) == 0 else { return (soft, soft, hard) }
        return (soft, current().soft, hard)
    }

    /// Descriptors open in this process (entries of /proc/self/fd, less the one used to list them).
    static func openDescriptors() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 64 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { n += 1 }
        }
        return max(0, n - 1)
    }
}
