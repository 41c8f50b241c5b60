import CLinuxShims
import EngineStoreWire
import EventPoll
import Glibc
import Logging

/// The listening socket: accepts clients up to the connection limit, checks peer credentials
/// against the allowlist, and backs off when the process runs out of descriptors.
///
/// Descriptors: client connections stop at a budget computed from RLIMIT_NOFILE at start (see
/// `DescriptorLimits`), so Postgres and Redis reconnects always find a descriptor. Should `accept`
/// still fail with EMFILE/ENFILE, the listener is taken out of epoll for 50 ms, doubling to 1 s, so
/// the loop never spins on it; refusals are logged once per second with a count.
final class Listener {
    static let token: UInt64 = 1

    private var fd: Int32
    private let poller: Poller
    private let context: ServiceContext
    private let configuration: ServerConfiguration
    /// Client connections accepted at most: `maxConnections`, or the descriptor budget if lower.
    let connectionLimit: Int
    /// While accepting is paused after EMFILE/ENFILE: when to resume (0 = not paused).
    private(set) var pausedUntil: UInt64 = 0
    private var backoffMs: UInt64 = 0
    private var lastPause: UInt64 = 0
    /// Refusals since the last log line, by reason, and when the next line may be written.
    private var refusals: [String: Int] = [:]
    private var nextRefusalLog: UInt64 = 0

    init(fd: Int32, poller: Poller, context: ServiceContext) throws {
        self.fd = fd
        self.poller = poller
        self.context = context
        self.configuration = context.configuration
        let budget = configuration.testHooks.descriptorBudget ?? DescriptorLimits.connectionBudget(
            softLimit: DescriptorLimits.current().soft, openNow: DescriptorLimits.openDescriptors(),
            postgresConnections: configuration.postgresConnections)
        connectionLimit = min(configuration.maxConnections, budget)
        context.metrics.connectionLimit.record(connectionLimit)
        if connectionLimit < configuration.maxConnections {
            context.logger.warning("the descriptor limit leaves room for fewer connections than --max-connections", metadata: [
                "reason": "fd_limit", "connection_limit": "\(connectionLimit)", "max_connections": "\(configuration.maxConnections)",
                "nofile": "\(DescriptorLimits.current().soft)",
                "needed": "\(DescriptorLimits.needed(maxConnections: configuration.maxConnections, postgresConnections: configuration.postgresConnections))",
            ])
        }
        try poller.register(fd: fd, token: Self.token, events: EPOLLIN.rawValue)
    }

    /// Accepts up to 64 waiting clients. Past the connection limit, while draining, or off the
    /// allowlist a client is told why and closed; the others go to `admit`, which returns false if
    /// it could not take the descriptor (and closed it).
    func acceptClients(open: Int, draining: Bool, admit: (Int32) -> Bool) {
        guard fd >= 0, pausedUntil == 0 else { return }
        var open = open
        for _ in 0..<64 {
            let client: Int32
            if let hook = configuration.testHooks.acceptWillRun, case let injected = hook(), injected != 0 {
                errno = injected
                client = -1
            } else {
                client = es_accept_nonblocking(fd)
            }
            if client < 0 {
                if errno == EMFILE || errno == ENFILE { pause() }
                return
            }
            if open >= connectionLimit || draining {
                if !draining { refusals["connection_limit", default: 0] += 1 }
                refuse(client, draining ? .shuttingDown : .resourceExhausted, draining ? "server shutting down" : "too many connections")
                continue
            }
            if let uid = disallowedPeer(client) {
                refuse(client, .unauthenticated, "peer uid \(uid) is not allowed")
                context.metrics.error(.unauthenticated)
                continue
            }
            if admit(client) { open += 1 }
        }
    }

    /// With an allowlist configured: nil when the peer's uid or gid is on it, else the uid to name in
    /// the refusal (logged with gid and pid; unknown credentials are refused).
    private func disallowedPeer(_ client: Int32) -> UInt32? {
        guard !configuration.allowedUIDs.isEmpty || !configuration.allowedGIDs.isEmpty else { return nil }
        var cred = es_peer_credentials()
        let known = es_peer_credentials(client, &cred) == 0
        if known && (configuration.allowedUIDs.contains(cred.uid) || configuration.allowedGIDs.contains(cred.gid)) { return nil }
        context.logger.warning("refused a peer not on the allowlist", metadata: [
            "reason": "peer_not_allowed", "uid": "\(known ? String(cred.uid) : "?")",
            "gid": "\(known ? String(cred.gid) : "?")", "pid": "\(known ? String(cred.pid) : "?")",
        ])
        return cred.uid
    }

    /// Best effort: tells the peer why, then closes.
    private func refuse(_ client: Int32, _ code: ErrorCode, _ message: String) {
        let frame = Frame.encode(header: FrameHeader(kind: .error, method: 0, requestID: 0),
                                 message: ErrorPayload(code: code, message: message))
        _ = frame.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(client)
    }

    /// EMFILE/ENFILE: take the listener out of epoll for a while (50 ms, doubling to 1 s while it keeps
    /// failing), so a full descriptor table costs no CPU. Pending clients wait in the backlog.
    private func pause() {
        let now = monotonicNanos()
        backoffMs = (backoffMs == 0 || now &- lastPause > 2_000_000_000) ? 50 : min(backoffMs * 2, 1000)
        lastPause = now
        pausedUntil = now + backoffMs * 1_000_000
        refusals["fd_limit", default: 0] += 1
        poller.unregister(fd: fd)
    }

    /// Puts the listener back into epoll once a pause has run out.
    func resumeIfDue(now: UInt64, draining: Bool) {
        guard pausedUntil != 0 && now >= pausedUntil else { return }
        pausedUntil = 0
        guard fd >= 0, !draining else { return }
        try? poller.register(fd: fd, token: Self.token, events: EPOLLIN.rawValue)
    }

    /// One line per reason and second at most, with the count since the last one.
    func logRefusals(now: UInt64, connections: Int) {
        guard !refusals.isEmpty, now >= nextRefusalLog else { return }
        for (reason, count) in refusals.sorted(by: { $0.key < $1.key }) {
            context.metrics.connectionsRefused(reason: reason, count: count)
            if reason == "fd_limit" {
                context.logger.error("out of file descriptors; accepting paused", metadata: [
                    "reason": "fd_limit", "count": "\(count)", "paused_ms": "\(backoffMs)", "connections": "\(connections)",
                ])
            } else {
                context.logger.warning("connections refused at the connection limit", metadata: [
                    "reason": "connection_limit", "count": "\(count)", "connection_limit": "\(connectionLimit)",
                ])
            }
        }
        refusals.removeAll(keepingCapacity: true)
        nextRefusalLog = now + 1_000_000_000
    }

    /// Stops listening for good (drain): the socket is closed and its path removed.
    func stop() {
        guard fd >= 0 else { return }
        poller.unregister(fd: fd)
        Glibc.close(fd)
        unlink(configuration.socketPath)
        fd = -1
    }
}
