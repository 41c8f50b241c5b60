import CLinuxShims
import EngineStoreWire
import EventPoll
import Glibc
import Logging

/// The single I/O thread. It glues the `Poller` (epoll), the `Listener` (accept, allowlist,
/// descriptor back-off), one `ConnectionStateMachine` per client (the protocol) and the timers:
/// it reads bytes into a machine, performs the actions the machine returns (dispatch, write,
/// close) and writes replies posted to its mailbox. Nothing here blocks: sockets are non-blocking
/// and all Postgres and Redis work happens on other threads. A connection that reaches its
/// in-flight limit or its output cap simply stops being read (back-pressure).
final class EventLoop {
    private typealias Action = ConnectionStateMachine.Action
    private static let mailboxToken: UInt64 = 2

    private let poller: Poller
    private let listener: Listener
    private let mailbox: Mailbox
    private let dispatcher: Dispatcher
    private let context: ServiceContext
    private let configuration: ServerConfiguration
    private let settings: ConnectionStateMachine.Settings
    private var logger: Logger
    private var connections: [UInt64: Connection] = [:]
    private var nextConnectionID: UInt64 = 16
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)
    private var inbox: [LoopMessage] = []
    private var dirty: [Connection] = []
    private var draining = false
    private var drainDeadline: UInt64 = 0
    private var nextDeadlineScan: UInt64 = 0
    private var nextTimeoutScan: UInt64 = 0
    /// The most reply bytes one connection has held (output_buffered_peak_bytes).
    private var peakHeldOutput = 0
    /// Requests handed to workers and not yet answered, over all connections (kept, not recounted,
    /// so the loop never walks every connection to find out whether any is waiting).
    private var inFlight = 0
    private var estimates = ReplyEstimates()

    init(listenFD: Int32, mailbox: Mailbox, dispatcher: Dispatcher, context: ServiceContext) throws {
        self.poller = try Poller()
        self.mailbox = mailbox
        self.dispatcher = dispatcher
        self.context = context
        self.configuration = context.configuration
        self.settings = ConnectionStateMachine.Settings(context.configuration, methods: dispatcher.implementedMethods)
        self.logger = context.logger
        self.listener = try Listener(fd: listenFD, poller: poller, context: context)
        try poller.register(fd: mailbox.wakeup.fd, token: Self.mailboxToken, events: EPOLLIN.rawValue)
    }

    /// Runs until a shutdown message arrives and every connection is drained (or the grace period ends).
    func run() {
        while true {
            var timeout: Int32 = !dirty.isEmpty ? 0 : (draining ? 20 : (inFlight > 0 ? 50 : 1000))
            let paused = listener.pausedUntil
            if paused != 0 {
                timeout = min(timeout, Int32(clamping: (paused &- min(paused, monotonicNanos())) / 1_000_000 + 1))
            }
            guard poller.wait(timeoutMs: timeout, ready) else {
                logger.critical("epoll_wait failed", metadata: ["error": "\(SystemError("epoll_wait"))"])
                break
            }
            let now = monotonicNanos()
            if now >= nextDeadlineScan {
                if inFlight > 0 {
                    for c in connections.values where c.state.inFlight > 0 { step(c) { $0.expireDeadlines(now: now) } }
                }
                nextDeadlineScan = now + 10_000_000
            }
            listener.resumeIfDue(now: now, draining: draining)
            if now >= nextTimeoutScan {
                dropStalledConnections(now)
                listener.logRefusals(now: now, connections: connections.count)
                nextTimeoutScan = now + 100_000_000
            }
            flushDirty()
            if draining && (connections.values.allSatisfy(\.state.isIdle) || now >= drainDeadline) { break }
        }
        for c in Array(connections.values) { closeConnection(c) }
    }

    private func ready(_ token: UInt64, _ events: UInt32) {
        switch token {
        case Listener.token: listener.acceptClients(open: connections.count, draining: draining, admit: admit)
        case Self.mailboxToken: processMailbox()
        default:
            guard let c = connections[token] else { return }
            if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readable(c) }
            if events & EPOLLOUT.rawValue != 0, c.isOpen { flush(c) }
        }
    }

    private func admit(_ fd: Int32) -> Bool {
        let c = Connection(id: nextConnectionID, fd: fd, settings: settings, now: monotonicNanos())
        nextConnectionID += 1
        c.interest = EPOLLIN.rawValue
        do {
            try poller.register(fd: fd, token: c.id, events: c.interest)
        } catch {
            close(fd)
            return false
        }
        connections[c.id] = c
        context.stats.openConnections.add(1, ordering: .relaxed)
        context.metrics.openConnections.record(connections.count)
        return true
    }

    // MARK: the state machines' events and actions

    /// Feeds one event to a connection's state machine and performs what it returns.
    private func step(_ c: Connection, _ event: (inout ConnectionStateMachine) -> [Action]) {
        let inFlightBefore = c.state.inFlight
        let framesBefore = c.state.framesReceived
        let actions = event(&c.state)
        inFlight += c.state.inFlight - inFlightBefore
        if c.state.framesReceived != framesBefore { context.metrics.framesIn.increment(by: c.state.framesReceived - framesBefore) }
        for action in actions { perform(action, on: c) }
    }

    private func perform(_ action: Action, on c: Connection) {
        switch action {
        case .send(_, let error):
            if let error { context.metrics.error(error) }
            context.metrics.framesOut.increment()
            peakHeldOutput = max(peakHeldOutput, c.state.output.heldBytes)
            if !c.dirty {
                c.dirty = true
                dirty.append(c)
            }
        case .dispatch(let r):
            let target = ReplyTarget(mailbox: mailbox, connection: c.id, requestID: r.requestID, token: r.token, method: r.method,
                                     deadlineNanos: r.deadlineNanos, receivedNanos: r.receivedNanos, metrics: context.metrics)
            do {
                try dispatcher.dispatch(method: r.method, payload: r.payload, reply: target)
            } catch {
                // Refused before reaching the database (validation): counted, nothing written.
                context.metrics.method(r.method)?.rejected?.increment()
                step(c) { $0.dispatchRejected(requestID: r.requestID, error) }
            }
        case .protocolViolation(let code, let message):
            logger.info("closing connection after protocol violation", metadata: [
                "reason": "protocol_violation", "connection": "\(c.id)", "code": "\(code)", "detail": "\(message)",
            ])
        case .close(let reason):
            logClose(c, reason)
            closeConnection(c)
        }
    }

    /// Stalled connections are logged and counted by reason; a peer's close or a violation's is not.
    private func logClose(_ c: Connection, _ reason: ConnectionStateMachine.CloseReason) {
        switch reason {
        case .peerClosed, .protocolViolation: return
        case .writeTimeout:
            logger.warning("closing connection: the peer took no reply bytes for the write timeout", metadata: [
                "reason": "write_timeout", "connection": "\(c.id)", "unsent_bytes": "\(c.state.output.unsentBytes)",
                "write_timeout_ms": "\(configuration.writeTimeoutMs)",
            ])
        case .handshakeTimeout, .frameTimeout, .idleTimeout:
            logger.info("closing stalled connection", metadata: ["reason": "\(reason.rawValue)", "connection": "\(c.id)"])
        }
        context.metrics.connectionClosed(reason: reason.rawValue)
    }

    // MARK: read

    private func readable(_ c: Connection) {
        let now = monotonicNanos()
        // A connection whose replies are piling up (it sends faster than it reads) gets one 64 KiB read
        // per turn, so a crowd of them filling their buffers delays everyone else by less.
        for _ in 0..<(c.state.hasOutput ? 1 : 4) {
            let n = scratch.withUnsafeMutableBytes { read(c.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                c.state.received(scratch[0..<n], now: now)
                if n < scratch.count { break }
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                break
            } else {
                step(c) { $0.peerClosed() }
                return
            }
        }
        parseFrames(c, now: now)
        updateInterest(c)
    }

    /// Takes complete frames off the connection's input while its state machine allows.
    private func parseFrames(_ c: Connection, now: UInt64 = monotonicNanos()) {
        var more = true
        while more {
            step(c) { let actions = $0.nextFrame(now: now, estimates: estimates); more = !actions.isEmpty; return actions }
        }
    }

    private func processMailbox() {
        mailbox.drain(into: &inbox)
        for message in inbox {
            switch message {
            case .reply(let id, let requestID, let token, let frame):
                guard let c = connections[id] else { continue }
                step(c) { $0.replyArrived(requestID: requestID, token: token, frame: frame, now: monotonicNanos(), estimates: &estimates) }
            case .shutdown:
                beginDrain()
            }
        }
        inbox.removeAll(keepingCapacity: true)
    }

    /// Closes stalled connections (see `ConnectionStateMachine.checkTimeouts`) and samples the
    /// transport gauges.
    private func dropStalledConnections(_ now: UInt64) {
        var buffered = 0
        var capped = 0
        for c in Array(connections.values) {
            step(c) { $0.checkTimeouts(now: now) }
            guard c.isOpen else { continue }
            buffered += c.state.output.unsentBytes
            if !c.state.underOutputCap { capped += 1 }
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
            guard c.isOpen else { continue }
            flush(c)
            if c.isOpen {
                // Replies freed in-flight slots: frames waiting in the buffer may proceed.
                if !c.state.closeAfterFlush && !c.state.input.unparsed.isEmpty { parseFrames(c) }
                updateInterest(c)
            }
        }
    }

    private func flush(_ c: Connection) {
        var wrote = false
        while c.state.hasOutput {
            let n = c.sendHead()
            if n > 0 {
                c.state.didWrite(n)
                wrote = true
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                step(c) { $0.peerClosed() }
                return
            }
        }
        step(c) { $0.flushEnded(wrote: wrote, now: monotonicNanos()) }
        guard c.isOpen else { return }
        // Below the output cap again: frames already buffered may proceed (the peer may send nothing
        // more until it has its replies).
        if wrote && !c.state.closeAfterFlush && c.state.underOutputCap && !c.state.input.unparsed.isEmpty {
            parseFrames(c)
        }
        updateInterest(c)
    }

    /// EPOLLOUT only for output a write left behind (the socket was full): a dirty connection is
    /// flushed before the loop waits again, so asking for EPOLLOUT first would cost two `epoll_ctl`
    /// calls per reply (on, then off after the flush).
    private func updateInterest(_ c: Connection) {
        guard c.isOpen else { return }
        let want = (c.state.wantsRead ? EPOLLIN.rawValue : 0) | (c.state.hasOutput && !c.dirty ? EPOLLOUT.rawValue : 0)
        guard want != c.interest else { return }
        c.interest = want
        poller.modify(fd: c.fd, token: c.id, events: want)
    }

    private func closeConnection(_ c: Connection) {
        guard connections.removeValue(forKey: c.id) != nil else { return }
        c.isOpen = false
        inFlight -= c.state.inFlight
        poller.unregister(fd: c.fd)
        close(c.fd)
        context.stats.openConnections.subtract(1, ordering: .relaxed)
        context.metrics.openConnections.record(connections.count)
    }

    // MARK: shutdown

    private func beginDrain() {
        guard !draining else { return }
        draining = true
        drainDeadline = monotonicNanos() + configuration.shutdownGraceMs * 1_000_000
        listener.stop()
        for c in connections.values { step(c) { $0.shutdownRequested() } }
        logger.info("draining connections", metadata: ["connections": "\(connections.count)"])
    }
}
