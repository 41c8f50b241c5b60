import CLinuxShims
import EngineStoreWire
import Glibc
import Logging

/// The single I/O thread: accepts, reads and splits frames, hands requests to the dispatcher,
/// and writes replies posted to its mailbox. Nothing here blocks: sockets are non-blocking and all
/// Postgres and Redis work happens on other threads. Level-triggered epoll; a connection that
/// reaches its in-flight limit or its output cap simply stops being read (back-pressure).
///
/// Descriptors: client connections stop at a budget computed from RLIMIT_NOFILE at start (see
/// `DescriptorLimits`), so Postgres and Redis reconnects always find a descriptor. Should `accept`
/// still fail with EMFILE/ENFILE, the listener is taken out of epoll for 50 ms, doubling to 1 s, so
/// the loop never spins on it; refusals are logged once per second with a count.
final class EventLoop {
    private static let listenerToken: UInt64 = 1
    private static let mailboxToken: UInt64 = 2

    private let epfd: Int32
    private var listenFD: Int32
    private let mailbox: Mailbox
    private let dispatcher: Dispatcher
    private let context: ServiceContext
    private let configuration: ServerConfiguration
    private var logger: Logger
    private var connections: [UInt64: Connection] = [:]
    private var nextConnectionID: UInt64 = 16
    private var nextToken: UInt64 = 1
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)
    private var inbox: [LoopMessage] = []
    private var dirty: [Connection] = []
    private var draining = false
    private var drainDeadline: UInt64 = 0
    private var nextDeadlineScan: UInt64 = 0
    private var nextTimeoutScan: UInt64 = 0
    /// Client connections accepted at most: `maxConnections`, or the descriptor budget if lower.
    private let connectionLimit: Int
    /// While accepting is paused after EMFILE/ENFILE: when to resume (0 = not paused).
    private var acceptPausedUntil: UInt64 = 0
    private var acceptBackoffMs: UInt64 = 0
    private var lastAcceptPause: UInt64 = 0
    /// Refusals since the last log line, by reason, and when the next line may be written.
    private var refusals: [String: Int] = [:]
    private var nextRefusalLog: UInt64 = 0
    /// The most reply bytes one connection has held (output_buffered_peak_bytes).
    private var peakHeldOutput = 0

    init(listenFD: Int32, mailbox: Mailbox, dispatcher: Dispatcher, context: ServiceContext) throws {
        self.epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SystemError("epoll_create1") }
        self.listenFD = listenFD
        self.mailbox = mailbox
        self.dispatcher = dispatcher
        self.context = context
        self.configuration = context.configuration
        self.logger = context.logger
        let budget = configuration.testHooks.descriptorBudget ?? DescriptorLimits.connectionBudget(
            softLimit: DescriptorLimits.current().soft, openNow: DescriptorLimits.openDescriptors(),
            postgresConnections: configuration.postgresConnections)
        self.connectionLimit = min(configuration.maxConnections, budget)
        context.metrics.connectionLimit.record(connectionLimit)
        if connectionLimit < configuration.maxConnections {
            context.logger.warning("the descriptor limit leaves room for fewer connections than --max-connections", metadata: [
                "reason": "fd_limit", "connection_limit": "\(connectionLimit)", "max_connections": "\(configuration.maxConnections)",
                "nofile": "\(DescriptorLimits.current().soft)",
                "needed": "\(DescriptorLimits.needed(maxConnections: configuration.maxConnections, postgresConnections: configuration.postgresConnections))",
            ])
        }
        try add(fd: listenFD, token: Self.listenerToken, events: EPOLLIN.rawValue)
        try add(fd: mailbox.eventFD, token: Self.mailboxToken, events: EPOLLIN.rawValue)
    }

    deinit { close(epfd) }

    private func add(fd: Int32, token: UInt64, events: UInt32) throws {
        var ev = epoll_event(events: events, data: epoll_data_t(u64: token))
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else { throw SystemError("epoll_ctl ADD") }
    }

    /// Runs until a shutdown message arrives and every connection is drained (or the grace period ends).
    func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            var timeout: Int32 = !dirty.isEmpty ? 0 : (draining ? 20 : (inFlight > 0 ? 50 : 1000))
            if acceptPausedUntil != 0 {
                let left = Int32(clamping: (acceptPausedUntil &- min(acceptPausedUntil, monotonicNanos())) / 1_000_000 + 1)
                timeout = min(timeout, left)
            }
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, 256, timeout) }
            if n < 0 && errno != EINTR {
                logger.critical("epoll_wait failed", metadata: ["error": "\(SystemError("epoll_wait"))"])
                break
            }
            if n > 0 {
                for i in 0..<Int(n) {
                    let ev = events[i]
                    switch ev.data.u64 {
                    case Self.listenerToken: acceptConnections()
                    case Self.mailboxToken: processMailbox()
                    default:
                        guard let c = connections[ev.data.u64] else { continue }
                        if ev.events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readable(c) }
                        if ev.events & EPOLLOUT.rawValue != 0, connections[c.id] != nil { flush(c) }
                    }
                }
            }
            let now = monotonicNanos()
            if now >= nextDeadlineScan {
                expireDeadlines(now)
                nextDeadlineScan = now + 10_000_000
            }
            if acceptPausedUntil != 0 && now >= acceptPausedUntil { resumeAccepting() }
            if now >= nextTimeoutScan {
                dropStalledConnections(now)
                logRefusals(now)
                nextTimeoutScan = now + 100_000_000
            }
            flushDirty()
            if draining {
                let idle = connections.values.allSatisfy { $0.pending.isEmpty && !$0.hasOutput }
                if idle || now >= drainDeadline { break }
            }
        }
        for c in Array(connections.values) { closeConnection(c) }
    }

    /// Requests handed to workers and not yet answered, over all connections (kept, not recounted,
    /// so the loop never walks every connection to find out whether any is waiting).
    private var inFlight = 0

    private func setPending(_ c: Connection, _ requestID: UInt32, _ p: Connection.Pending?) {
        let had: Connection.Pending?
        if let p { had = c.pending.updateValue(p, forKey: requestID) } else { had = c.pending.removeValue(forKey: requestID) }
        inFlight += (p == nil ? 0 : 1) - (had == nil ? 0 : 1)
        c.reservedOutput += (p?.reserve ?? 0) - (had?.reserve ?? 0)
    }

    /// The largest reply seen per method (index = method id; 0 = none yet). A request in flight counts
    /// against its connection's output cap with this much, so a client that does not read cannot have
    /// many large replies (Stats prints every metric, ~100 KiB) made for it: above the cap nothing more
    /// is parsed. Until a method has answered once, a first guess stands in.
    private var replyEstimate = [Int](repeating: 0, count: Int(Method.allCases.map(\.rawValue).max()!) + 1)

    private func reserve(for method: UInt16) -> Int {
        let seen = Int(method) < replyEstimate.count ? replyEstimate[Int(method)] : 0
        if seen > 0 { return seen }
        return method == Method.stats.rawValue ? 128 * 1024 : 1024
    }

    private func learnReplySize(_ method: UInt16, _ bytes: Int) {
        guard Int(method) < replyEstimate.count, bytes > replyEstimate[Int(method)] else { return }
        replyEstimate[Int(method)] = bytes
    }

    /// Under the output cap, counting replies on their way: the connection may be read and parsed.
    private func underOutputCap(_ c: Connection) -> Bool {
        c.outputBytes + c.reservedOutput < configuration.maxOutputBytes
    }

    // MARK: accept

    private func acceptConnections() {
        guard listenFD >= 0, acceptPausedUntil == 0 else { return }
        for _ in 0..<64 {
            let fd: Int32
            if let hook = configuration.testHooks.acceptWillRun, case let injected = hook(), injected != 0 {
                errno = injected
                fd = -1
            } else {
                fd = es_accept_nonblocking(listenFD)
            }
            if fd < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                if errno == EMFILE || errno == ENFILE {
                    pauseAccepting()
                    return
                }
                return
            }
            if connections.count >= connectionLimit || draining {
                if !draining { refusals["connection_limit", default: 0] += 1 }
                // Best effort: tell the peer why, then close.
                let code: ErrorCode = draining ? .shuttingDown : .resourceExhausted
                let frame = Frame.encode(header: FrameHeader(kind: .error, method: 0, requestID: 0),
                                         message: ErrorPayload(code: code, message: draining ? "server shutting down" : "too many connections"))
                _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
                continue
            }
            if !configuration.allowedUIDs.isEmpty || !configuration.allowedGIDs.isEmpty {
                var cred = es_peer_credentials()
                let known = es_peer_credentials(fd, &cred) == 0
                let allowed = known && (configuration.allowedUIDs.contains(cred.uid) || configuration.allowedGIDs.contains(cred.gid))
                if !allowed {
                    logger.warning("refused a peer not on the allowlist", metadata: [
                        "reason": "peer_not_allowed", "uid": "\(known ? String(cred.uid) : "?")",
                        "gid": "\(known ? String(cred.gid) : "?")", "pid": "\(known ? String(cred.pid) : "?")",
                    ])
                    let frame = Frame.encode(header: FrameHeader(kind: .error, method: 0, requestID: 0),
                                             message: ErrorPayload(code: .unauthenticated, message: "peer uid \(cred.uid) is not allowed"))
                    _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    context.metrics.error(.unauthenticated)
                    close(fd)
                    continue
                }
            }
            let c = Connection(id: nextConnectionID, fd: fd, now: monotonicNanos())
            nextConnectionID += 1
            c.interest = EPOLLIN.rawValue
            do {
                try add(fd: fd, token: c.id, events: c.interest)
            } catch {
                close(fd)
                continue
            }
            connections[c.id] = c
            context.stats.openConnections.add(1, ordering: .relaxed)
            context.metrics.openConnections.record(connections.count)
        }
    }

    /// EMFILE/ENFILE: take the listener out of epoll for a while (50 ms, doubling to 1 s while it keeps
    /// failing), so a full descriptor table costs no CPU. Pending clients wait in the backlog.
    private func pauseAccepting() {
        let now = monotonicNanos()
        acceptBackoffMs = (acceptBackoffMs == 0 || now &- lastAcceptPause > 2_000_000_000) ? 50 : min(acceptBackoffMs * 2, 1000)
        lastAcceptPause = now
        acceptPausedUntil = now + acceptBackoffMs * 1_000_000
        refusals["fd_limit", default: 0] += 1
        epoll_ctl(epfd, EPOLL_CTL_DEL, listenFD, nil)
    }

    private func resumeAccepting() {
        acceptPausedUntil = 0
        guard listenFD >= 0, !draining else { return }
        try? add(fd: listenFD, token: Self.listenerToken, events: EPOLLIN.rawValue)
    }

    /// One line per reason and second at most, with the count since the last one.
    private func logRefusals(_ now: UInt64) {
        guard !refusals.isEmpty, now >= nextRefusalLog else { return }
        for (reason, count) in refusals.sorted(by: { $0.key < $1.key }) {
            context.metrics.connectionsRefused(reason: reason, count: count)
            if reason == "fd_limit" {
                logger.error("out of file descriptors; accepting paused", metadata: [
                    "reason": "fd_limit", "count": "\(count)", "paused_ms": "\(acceptBackoffMs)", "connections": "\(connections.count)",
                ])
            } else {
                logger.warning("connections refused at the connection limit", metadata: [
                    "reason": "connection_limit", "count": "\(count)", "connection_limit": "\(connectionLimit)",
                ])
            }
        }
        refusals.removeAll(keepingCapacity: true)
        nextRefusalLog = now + 1_000_000_000
    }

    // MARK: read

    private func readable(_ c: Connection) {
        // A connection whose replies are piling up (it sends faster than it reads) gets one 64 KiB read
        // per turn, so a crowd of them filling their buffers delays everyone else by less.
        for _ in 0..<(c.hasOutput ? 1 : 4) {
            let n = scratch.withUnsafeMutableBytes { read(c.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                c.lastActivityNanos = monotonicNanos()
                c.input.append(contentsOf: scratch[0..<n])
                if n < scratch.count { break }
            } else if n == 0 {
                closeConnection(c)
                return
            } else {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                closeConnection(c)
                return
            }
        }
        parseFrames(c)
        updateInterest(c)
    }

    /// Takes complete frames off the connection's buffer while it is under its in-flight limit.
    private func parseFrames(_ c: Connection) {
        while !c.closeAfterFlush && c.pending.count < configuration.maxInFlightPerConnection && underOutputCap(c) {
            let step: FrameParser.Step
            do {
                step = try FrameParser.next(in: c.bufferedInput, maxFrameBytes: configuration.maxFrameBytes)
            } catch {
                protocolViolation(c, requestID: 0, code: .protocolError, message: error.description)
                return
            }
            guard case .frame(let frame, let consumed) = step else {
                if c.bufferedInput.isEmpty { c.partialSinceNanos = 0 } else if c.partialSinceNanos == 0 { c.partialSinceNanos = monotonicNanos() }
                return
            }
            c.partialSinceNanos = 0
            context.metrics.framesIn.increment()
            handle(frame, on: c)
            c.consumeInput(consumed)
        }
    }

    private func handle(_ frame: Frame, on c: Connection) {
        let h = frame.header
        guard h.version == protocolVersion else {
            let error = ServiceError(.unsupportedVersion, "frame version \(h.version) not supported; this server speaks 1")
            if c.handshaken {
                queueError(c, requestID: h.requestID, method: h.method, error)
            } else {
                protocolViolation(c, requestID: h.requestID, method: h.method, code: error.code, message: error.message)
            }
            return
        }
        guard h.kind == .request else {
            protocolViolation(c, requestID: 0, code: .protocolError, message: "clients may only send request frames (kind 1)")
            return
        }
        guard h.requestID != 0, c.pending[h.requestID] == nil else {
            protocolViolation(c, requestID: 0, code: .protocolError,
                              message: "request id \(h.requestID) is reserved or already in flight")
            return
        }
        if h.method == Method.hello.rawValue && c.handshaken {
            queueError(c, requestID: h.requestID, method: h.method, ServiceError(.failedPrecondition, "Hello was already accepted on this connection"))
            return
        }
        if h.method == Method.hello.rawValue {
            hello(frame, on: c)
            return
        }
        guard c.handshaken else {
            protocolViolation(c, requestID: h.requestID, method: h.method, code: .failedPrecondition, message: "the first request must be Hello")
            return
        }
        if draining {
            queueError(c, requestID: h.requestID, method: h.method, ServiceError(.shuttingDown, "server shutting down; retry on another instance or later"))
            return
        }
        if h.method == Method.ping.rawValue {
            // A no-op round trip: answered right here, no mailbox hop.
            do {
                let ping = try PingMessage(payload: frame.payload)
                queue(c, Frame.encode(header: FrameHeader(kind: .response, method: h.method, requestID: h.requestID), message: ping))
            } catch {
                queueError(c, requestID: h.requestID, method: h.method, ServiceError(wire: error))
            }
            return
        }
        let now = monotonicNanos()
        let ms = h.deadlineMs == 0 ? configuration.defaultDeadlineMs : h.deadlineMs
        let pending = Connection.Pending(token: nextToken, deadlineNanos: now + UInt64(ms) * 1_000_000, method: h.method,
                                         reserve: reserve(for: h.method))
        nextToken += 1
        let target = ReplyTarget(mailbox: mailbox, connection: c.id, requestID: h.requestID, token: pending.token,
                                 method: h.method, deadlineNanos: pending.deadlineNanos, receivedNanos: now, metrics: context.metrics)
        setPending(c, h.requestID, pending)
        do {
            try dispatcher.dispatch(method: h.method, payload: frame.payload, reply: target)
        } catch {
            setPending(c, h.requestID, nil)
            // Refused before reaching the database (validation): counted, nothing written.
            context.metrics.method(h.method)?.rejected?.increment()
            queueError(c, requestID: h.requestID, method: h.method, error)
        }
    }

    private func hello(_ frame: Frame, on c: Connection) {
        let h = frame.header
        let request: HelloRequest
        do {
            request = try HelloRequest(payload: frame.payload)
        } catch {
            // Like any other method's decode failure (§5.5), a bad field is named in `field`.
            let e = ServiceError(wire: error)
            protocolViolation(c, requestID: h.requestID, method: h.method, code: e.code, message: "Hello: \(e.message)", field: e.field)
            return
        }
        guard request.minVersion <= 1, request.maxVersion >= 1 else {
            protocolViolation(c, requestID: h.requestID, method: h.method, code: .unsupportedVersion,
                              message: "no common version: client \(request.minVersion)...\(request.maxVersion), server 1...1")
            return
        }
        c.handshaken = true
        let ok = HelloResponse(version: 1, serverName: "engine-store", serverVersion: serverVersion,
                               maxFrameBytes: configuration.maxFrameBytes,
                               maxInFlight: UInt32(configuration.maxInFlightPerConnection),
                               instanceID: configuration.instanceID, methods: dispatcher.implementedMethods)
        queue(c, Frame.encode(header: FrameHeader(kind: .response, method: h.method, requestID: h.requestID), message: ok))
    }

    // MARK: replies and errors

    private func queue(_ c: Connection, _ bytes: [UInt8]) {
        c.enqueue(bytes)
        if c.heldOutputBytes > peakHeldOutput { peakHeldOutput = c.heldOutputBytes }
        context.metrics.framesOut.increment()
        if !c.dirty {
            c.dirty = true
            dirty.append(c)
        }
    }

    private func queueError(_ c: Connection, requestID: UInt32, method: UInt16, _ error: ServiceError) {
        context.metrics.error(error.code)
        queue(c, Frame.encode(header: FrameHeader(kind: .error, method: method, requestID: requestID), message: error.payload))
    }

    /// Answers with an error and closes once the answer is written: the stream can't be trusted.
    private func protocolViolation(_ c: Connection, requestID: UInt32, method: UInt16 = 0, code: ErrorCode, message: String,
                                   field: String? = nil) {
        logger.info("closing connection after protocol violation", metadata: [
            "reason": "protocol_violation", "connection": "\(c.id)", "code": "\(code)", "detail": "\(message)",
        ])
        queueError(c, requestID: requestID, method: method, ServiceError(code, message, field: field))
        c.closeAfterFlush = true
    }

    private func processMailbox() {
        mailbox.drain(into: &inbox)
        for message in inbox {
            switch message {
            case .reply(let id, let requestID, let token, let frame):
                guard let c = connections[id], let p = c.pending[requestID], p.token == token else { continue }
                setPending(c, requestID, nil)
                learnReplySize(p.method, frame.count)
                // An answer that comes after the deadline is not the answer (§3.6): the client has been
                // told, or is about to be, that the effect is unknown, whatever the timer's turn.
                if p.deadlineNanos <= monotonicNanos() {
                    queueError(c, requestID: requestID, method: p.method, Self.deadlineExceeded)
                } else {
                    queue(c, frame)
                }
            case .shutdown:
                beginDrain()
            }
        }
        inbox.removeAll(keepingCapacity: true)
    }

    private static let deadlineExceeded = ServiceError(
        .deadlineExceeded, "deadline exceeded; the write may or may not have been applied — retry with the same idempotency key")

    private func expireDeadlines(_ now: UInt64) {
        guard inFlight > 0 else { return }
        for c in connections.values where !c.pending.isEmpty {
            for (requestID, p) in c.pending where p.deadlineNanos <= now {
                setPending(c, requestID, nil)
                queueError(c, requestID: requestID, method: p.method, Self.deadlineExceeded)
            }
        }
    }

    /// Handshake, half-frame, write and idle timeouts: a stalled client loses its connection, nobody
    /// else notices. Also samples the transport gauges.
    ///
    /// A connection with output pending is never idle: the write timeout applies to it instead (the
    /// peer is not taking its replies). A half frame does not time out while the connection is not
    /// read because of its output cap (the server, not the peer, holds it up).
    private func dropStalledConnections(_ now: UInt64) {
        let ms: UInt64 = 1_000_000
        var buffered = 0
        var capped = 0
        for c in Array(connections.values) {
            let reason: String
            if !c.handshaken && now &- c.openedNanos > configuration.handshakeTimeoutMs * ms {
                reason = "handshake_timeout"
            } else if c.hasOutput && c.writeStalledSinceNanos != 0 && now &- c.writeStalledSinceNanos > configuration.writeTimeoutMs * ms {
                reason = "write_timeout"
            } else if c.partialSinceNanos != 0 && underOutputCap(c) && now &- c.partialSinceNanos > configuration.frameTimeoutMs * ms {
                reason = "frame_timeout"
            } else if c.pending.isEmpty && !c.hasOutput && now &- c.lastActivityNanos > configuration.idleTimeoutMs * ms {
                reason = "idle_timeout"
            } else {
                buffered += c.outputBytes
                if !underOutputCap(c) { capped += 1 }
                continue
            }
            if reason == "write_timeout" {
                logger.warning("closing connection: the peer took no reply bytes for the write timeout", metadata: [
                    "reason": "write_timeout", "connection": "\(c.id)", "unsent_bytes": "\(c.outputBytes)",
                    "write_timeout_ms": "\(configuration.writeTimeoutMs)",
                ])
            } else {
                logger.info("closing stalled connection", metadata: ["reason": "\(reason)", "connection": "\(c.id)"])
            }
            context.metrics.connectionClosed(reason: reason)
            closeConnection(c)
        }
        context.metrics.outputBufferedBytes.record(buffered)
        context.metrics.outputCappedConnections.record(capped)
        context.metrics.outputBufferedPeakBytes.record(peakHeldOutput)
        context.metrics.inFlightRequests.record(inFlight)
    }

    // MARK: write

    private func flushDirty() {
        guard !dirty.isEmpty else { return }
        let list = dirty
        dirty.removeAll(keepingCapacity: true)
        for c in list {
            c.dirty = false
            guard connections[c.id] != nil else { continue }
            flush(c)
            if connections[c.id] != nil {
                // Replies freed in-flight slots: frames waiting in the buffer may proceed.
                if !c.closeAfterFlush && !c.bufferedInput.isEmpty { parseFrames(c) }
                updateInterest(c)
            }
        }
    }

    private func flush(_ c: Connection) {
        var wrote = false
        while c.hasOutput {
            let n = c.sendHead()
            if n > 0 {
                c.didWrite(n)
                wrote = true
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                closeConnection(c)
                return
            }
        }
        // The write timeout runs from the last time the peer took a byte while output was waiting.
        if wrote {
            let now = monotonicNanos()
            c.lastActivityNanos = now
            c.writeStalledSinceNanos = c.hasOutput ? now : 0
        } else if c.hasOutput && c.writeStalledSinceNanos == 0 {
            c.writeStalledSinceNanos = monotonicNanos()
        }
        if !c.hasOutput && c.closeAfterFlush {
            closeConnection(c)
            return
        }
        // Below the output cap again: frames already buffered may proceed (the peer may send nothing
        // more until it has its replies).
        if wrote && !c.closeAfterFlush && underOutputCap(c) && !c.bufferedInput.isEmpty {
            parseFrames(c)
        }
        updateInterest(c)
    }

    private func updateInterest(_ c: Connection) {
        guard connections[c.id] != nil else { return }
        var want: UInt32 = 0
        if !c.closeAfterFlush && c.pending.count < configuration.maxInFlightPerConnection
            && underOutputCap(c)
            && c.bufferedInput.count <= Int(configuration.maxFrameBytes) + 4 {
            want |= EPOLLIN.rawValue
        }
        if c.hasOutput { want |= EPOLLOUT.rawValue }
        guard want != c.interest else { return }
        c.interest = want
        var ev = epoll_event(events: want, data: epoll_data_t(u64: c.id))
        epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev)
    }

    private func closeConnection(_ c: Connection) {
        guard connections.removeValue(forKey: c.id) != nil else { return }
        inFlight -= c.pending.count
        epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nil)
        close(c.fd)
        context.stats.openConnections.subtract(1, ordering: .relaxed)
        context.metrics.openConnections.record(connections.count)
    }

    // MARK: shutdown

    private func beginDrain() {
        guard !draining else { return }
        draining = true
        drainDeadline = monotonicNanos() + configuration.shutdownGraceMs * 1_000_000
        if listenFD >= 0 {
            epoll_ctl(epfd, EPOLL_CTL_DEL, listenFD, nil)
            close(listenFD)
            unlink(configuration.socketPath)
            listenFD = -1
        }
        let notice = Frame.encode(header: FrameHeader(kind: .notice, method: 0, requestID: 0),
                                  message: Notice(code: .goingAway, message: "server shutting down"))
        for c in connections.values { queue(c, notice) }
        logger.info("draining connections", metadata: ["connections": "\(connections.count)"])
    }
}
