import EngineStoreWire

/// One client connection's protocol state, as a pure value: no descriptors, no clock, no syscalls.
/// The event loop feeds it events (bytes read, a reply posted, bytes written, the time, the peer
/// gone, shutdown) and performs the actions it returns. It owns the handshake, the requests in
/// flight and their deadlines, the output cap, close-after-flush and the stall timeouts, and the
/// connection's input and output buffers (so every decision sees exactly what is queued).
struct ConnectionStateMachine {
    struct Settings {
        var maxFrameBytes: UInt32
        var maxInFlight: Int
        /// Unsent reply bytes plus replies on their way above which the connection is not parsed.
        var maxOutputBytes: Int
        var defaultDeadlineMs: UInt32
        var handshakeTimeoutMs: UInt64
        var frameTimeoutMs: UInt64
        var idleTimeoutMs: UInt64
        var writeTimeoutMs: UInt64
        var instanceID: String
        /// The method bitmap Hello announces.
        var methods: [UInt64]
    }

    struct Pending: Equatable {
        let token: UInt64
        let deadlineNanos: UInt64
        let method: UInt16
        /// Output bytes set aside for the reply (the estimate for the method).
        let reserve: Int
    }

    /// A request for the dispatcher.
    struct Request: Equatable {
        let requestID: UInt32
        let method: UInt16
        let payload: ArraySlice<UInt8>
        let token: UInt64
        let deadlineNanos: UInt64
        let receivedNanos: UInt64
    }

    enum CloseReason: String, Equatable {
        /// The peer closed its end, or the socket failed.
        case peerClosed = "peer_closed"
        /// The error answering a protocol violation is written.
        case protocolViolation = "protocol_violation"
        case handshakeTimeout = "handshake_timeout"
        case writeTimeout = "write_timeout"
        case frameTimeout = "frame_timeout"
        case idleTimeout = "idle_timeout"
    }

    enum Action: Equatable {
        /// A frame is now queued on the output: the loop counts it (an error frame under `error`) and
        /// flushes it.
        case send([UInt8], error: ErrorCode?)
        /// Hand the request to the dispatcher; if it refuses, report `dispatchRejected`.
        case dispatch(Request)
        /// The stream can't be trusted: the error that follows is the last thing written before close.
        case protocolViolation(ErrorCode, String)
        /// Close the connection now; its requests in flight are forgotten.
        case close(CloseReason)
    }

    let settings: Settings
    var input = InputBuffer()
    private(set) var output = OutputQueue()
    private(set) var handshaken = false
    /// Requests sent to workers and not yet answered, by request id.
    private(set) var pending: [UInt32: Pending] = [:]
    /// Sum of `reserve` over `pending`: replies on their way, counted against the output cap.
    private(set) var reservedOutput = 0
    /// Set after a protocol violation: answer what is queued, then close.
    private(set) var closeAfterFlush = false
    private(set) var draining = false
    private(set) var closed = false
    private var nextToken: UInt64 = 1
    /// Frames taken off the input (frames_in_total).
    private(set) var framesReceived = 0
    let openedNanos: UInt64
    /// The last byte read from or written to the peer.
    private(set) var lastActivityNanos: UInt64
    /// When the oldest incomplete frame in the input began arriving (0 = none pending).
    var partialSinceNanos: UInt64 = 0
    /// Since when output has been pending without the kernel taking a byte (0 = no output pending,
    /// or the last flush made progress and the clock restarted then).
    private(set) var writeStalledSinceNanos: UInt64 = 0

    init(settings: Settings, now: UInt64) {
        self.settings = settings
        self.openedNanos = now
        self.lastActivityNanos = now
    }

    var inFlight: Int { pending.count }
    var hasOutput: Bool { !output.isEmpty }
    /// Nothing in flight and nothing to write (what a drain waits for).
    var isIdle: Bool { pending.isEmpty && output.isEmpty }

    /// Under the output cap, counting replies on their way: the connection may be read and parsed.
    var underOutputCap: Bool { output.unsentBytes + reservedOutput < settings.maxOutputBytes }

    /// Whether to read: not while closing, at the in-flight limit, over the output cap, or holding
    /// more than a largest frame unparsed (back-pressure).
    var wantsRead: Bool {
        !closed && !closeAfterFlush && pending.count < settings.maxInFlight && underOutputCap
            && input.unparsed.count <= Int(settings.maxFrameBytes) + 4
    }

    // MARK: events

    mutating func received<C: Collection>(_ bytes: C, now: UInt64) where C.Element == UInt8 {
        lastActivityNanos = now
        input.append(bytes)
    }

    /// A worker's reply. Dropped (no actions) unless that request is still pending with this token.
    mutating func replyArrived(requestID: UInt32, token: UInt64, frame: [UInt8], now: UInt64,
                               estimates: inout ReplyEstimates) -> [Action] {
        guard let p = pending[requestID], p.token == token else { return [] }
        setPending(requestID, nil)
        estimates.learn(p.method, frame.count)
        // An answer that comes after the deadline is not the answer (§3.6): the client has been
        // told, or is about to be, that the effect is unknown, whatever the timer's turn.
        if p.deadlineNanos <= now { return [queueError(requestID: requestID, method: p.method, Self.deadlineExceeded)] }
        return [queue(frame, error: nil)]
    }

    /// The dispatcher refused a request before it reached a worker (validation).
    mutating func dispatchRejected(requestID: UInt32, _ error: ServiceError) -> [Action] {
        guard let p = pending[requestID] else { return [] }
        setPending(requestID, nil)
        return [queueError(requestID: requestID, method: p.method, error)]
    }

    /// Answers every request whose deadline has passed with deadline_exceeded.
    mutating func expireDeadlines(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for (requestID, p) in pending where p.deadlineNanos <= now {
            setPending(requestID, nil)
            actions.append(queueError(requestID: requestID, method: p.method, Self.deadlineExceeded))
        }
        return actions
    }

    /// The kernel took `n` more reply bytes.
    mutating func didWrite(_ n: Int) {
        output.didWrite(n)
    }

    /// A flush attempt ended; `wrote` when it sent anything. The write timeout runs from the last
    /// time the peer took a byte while output was waiting.
    mutating func flushEnded(wrote: Bool, now: UInt64) -> [Action] {
        if wrote {
            lastActivityNanos = now
            writeStalledSinceNanos = hasOutput ? now : 0
        } else if hasOutput && writeStalledSinceNanos == 0 {
            writeStalledSinceNanos = now
        }
        if !hasOutput && closeAfterFlush { return close(.protocolViolation) }
        return []
    }

    /// Handshake, half-frame, write and idle timeouts: a stalled client loses its connection.
    ///
    /// A connection with output pending is never idle: the write timeout applies to it instead (the
    /// peer is not taking its replies). A half frame does not time out while the connection is not
    /// read because of its output cap (the server, not the peer, holds it up).
    mutating func checkTimeouts(now: UInt64) -> [Action] {
        let ms: UInt64 = 1_000_000
        if !handshaken && now &- openedNanos > settings.handshakeTimeoutMs * ms { return close(.handshakeTimeout) }
        if hasOutput && writeStalledSinceNanos != 0 && now &- writeStalledSinceNanos > settings.writeTimeoutMs * ms {
            return close(.writeTimeout)
        }
        if partialSinceNanos != 0 && underOutputCap && now &- partialSinceNanos > settings.frameTimeoutMs * ms {
            return close(.frameTimeout)
        }
        if isIdle && now &- lastActivityNanos > settings.idleTimeoutMs * ms { return close(.idleTimeout) }
        return []
    }

    /// The server begins to drain: the peer is told; later requests are refused with shutting_down.
    mutating func shutdownRequested() -> [Action] {
        guard !draining else { return [] }
        draining = true
        return [queue(Self.goingAway, error: nil)]
    }

    /// The peer closed its end (or the socket failed): close now; replies in flight will be dropped.
    mutating func peerClosed() -> [Action] {
        close(.peerClosed)
    }

    // MARK: helpers (for the +Frames extension: the loop only sends events and reads state)

    mutating func close(_ reason: CloseReason) -> [Action] {
        guard !closed else { return [] }
        closed = true
        pending.removeAll()
        reservedOutput = 0
        return [.close(reason)]
    }

    mutating func setPending(_ requestID: UInt32, _ p: Pending?) {
        let had = p.map { pending.updateValue($0, forKey: requestID) } ?? pending.removeValue(forKey: requestID)
        reservedOutput += (p?.reserve ?? 0) - (had?.reserve ?? 0)
    }

    mutating func takeToken() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    mutating func markHandshaken() { handshaken = true }
    mutating func markCloseAfterFlush() { closeAfterFlush = true }
    mutating func countFrameReceived() { framesReceived += 1 }

    mutating func queue(_ bytes: [UInt8], error: ErrorCode?) -> Action {
        output.enqueue(bytes)
        return .send(bytes, error: error)
    }

    mutating func queueError(requestID: UInt32, method: UInt16, _ error: ServiceError) -> Action {
        queue(Frame.encode(header: FrameHeader(kind: .error, method: method, requestID: requestID), message: error.payload),
              error: error.code)
    }

    static let deadlineExceeded = ServiceError(
        .deadlineExceeded, "deadline exceeded; the write may or may not have been applied — retry with the same idempotency key")

    static let goingAway = Frame.encode(header: FrameHeader(kind: .notice, method: 0, requestID: 0),
                                        message: Notice(code: .goingAway, message: "server shutting down"))
}
