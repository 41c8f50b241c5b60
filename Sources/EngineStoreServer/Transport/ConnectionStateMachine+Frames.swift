import EngineStoreWire

/// The largest reply seen per method (index = method id; 0 = none yet), shared by all connections.
/// A request in flight counts against its connection's output cap with this much, so a client that
/// does not read cannot have many large replies (Stats prints every metric, ~100 KiB) made for it:
/// above the cap nothing more is parsed. Until a method has answered once, a first guess stands in.
struct ReplyEstimates {
    private var largest = [Int](repeating: 0, count: Int(Method.allCases.map(\.rawValue).max()!) + 1)

    func reserve(for method: UInt16) -> Int {
        let seen = Int(method) < largest.count ? largest[Int(method)] : 0
        if seen > 0 { return seen }
        return method == Method.stats.rawValue ? 128 * 1024 : 1024
    }

    mutating func learn(_ method: UInt16, _ bytes: Int) {
        guard Int(method) < largest.count, bytes > largest[Int(method)] else { return }
        largest[Int(method)] = bytes
    }
}

extension ConnectionStateMachine {
    /// Takes the next complete frame off the input, if the connection is under its in-flight limit
    /// and output cap, and says what to do with it. No actions: nothing (more) to parse now. One
    /// frame per call, so a dispatch refused at once frees its slot before the next frame is parsed.
    mutating func nextFrame(now: UInt64, estimates: ReplyEstimates) -> [Action] {
        input.compact()
        guard !closed, !closeAfterFlush, pending.count < settings.maxInFlight, underOutputCap else { return [] }
        let step: FrameParser.Step
        do {
            step = try FrameParser.next(in: input.unparsed, maxFrameBytes: settings.maxFrameBytes)
        } catch {
            return violation(requestID: 0, code: .protocolError, message: error.description)
        }
        guard case .frame(let frame, let consumed) = step else {
            if input.unparsed.isEmpty { partialSinceNanos = 0 } else if partialSinceNanos == 0 { partialSinceNanos = now }
            return []
        }
        partialSinceNanos = 0
        countFrameReceived()
        input.consume(consumed)
        return handle(frame, now: now, estimates: estimates)
    }

    private mutating func handle(_ frame: Frame, now: UInt64, estimates: ReplyEstimates) -> [Action] {
        let h = frame.header
        guard h.version == protocolVersion else {
            let error = ServiceError(.unsupportedVersion, "frame version \(h.version) not supported; this server speaks 1")
            if handshaken { return [queueError(requestID: h.requestID, method: h.method, error)] }
            return violation(requestID: h.requestID, method: h.method, code: error.code, message: error.message)
        }
        guard h.kind == .request else {
            return violation(requestID: 0, code: .protocolError, message: "clients may only send request frames (kind 1)")
        }
        guard h.requestID != 0, pending[h.requestID] == nil else {
            return violation(requestID: 0, code: .protocolError, message: "request id \(h.requestID) is reserved or already in flight")
        }
        if h.method == Method.hello.rawValue {
            if handshaken {
                return [queueError(requestID: h.requestID, method: h.method,
                                   ServiceError(.failedPrecondition, "Hello was already accepted on this connection"))]
            }
            return hello(frame)
        }
        guard handshaken else {
            return violation(requestID: h.requestID, method: h.method, code: .failedPrecondition, message: "the first request must be Hello")
        }
        if draining {
            return [queueError(requestID: h.requestID, method: h.method,
                               ServiceError(.shuttingDown, "server shutting down; retry on another instance or later"))]
        }
        if h.method == Method.ping.rawValue {
            // A no-op round trip: answered right here, no mailbox hop.
            do {
                let ping = try PingMessage(payload: frame.payload)
                return [queue(Frame.encode(header: FrameHeader(kind: .response, method: h.method, requestID: h.requestID), message: ping),
                              error: nil)]
            } catch {
                return [queueError(requestID: h.requestID, method: h.method, ServiceError(wire: error))]
            }
        }
        let ms = h.deadlineMs == 0 ? settings.defaultDeadlineMs : h.deadlineMs
        let p = Pending(token: takeToken(), deadlineNanos: now + UInt64(ms) * 1_000_000, method: h.method,
                        reserve: estimates.reserve(for: h.method))
        setPending(h.requestID, p)
        return [.dispatch(Request(requestID: h.requestID, method: h.method, payload: frame.payload, token: p.token,
                                  deadlineNanos: p.deadlineNanos, receivedNanos: now))]
    }

    private mutating func hello(_ frame: Frame) -> [Action] {
        let h = frame.header
        let request: HelloRequest
        do {
            request = try HelloRequest(payload: frame.payload)
        } catch {
            // Like any other method's decode failure (§5.5), a bad field is named in `field`.
            let e = ServiceError(wire: error)
            return violation(requestID: h.requestID, method: h.method, code: e.code, message: "Hello: \(e.message)", field: e.field)
        }
        guard request.minVersion <= 1, request.maxVersion >= 1 else {
            return violation(requestID: h.requestID, method: h.method, code: .unsupportedVersion,
                             message: "no common version: client \(request.minVersion)...\(request.maxVersion), server 1...1")
        }
        markHandshaken()
        let ok = HelloResponse(version: 1, serverName: "engine-store", serverVersion: serverVersion,
                               maxFrameBytes: settings.maxFrameBytes, maxInFlight: UInt32(settings.maxInFlight),
                               instanceID: settings.instanceID, methods: settings.methods)
        return [queue(Frame.encode(header: FrameHeader(kind: .response, method: h.method, requestID: h.requestID), message: ok),
                      error: nil)]
    }

    /// Answers with an error and closes once the answer is written: the stream can't be trusted.
    private mutating func violation(requestID: UInt32, method: UInt16 = 0, code: ErrorCode, message: String,
                                    field: String? = nil) -> [Action] {
        markCloseAfterFlush()
        return [.protocolViolation(code, message),
                queueError(requestID: requestID, method: method, ServiceError(code, message, field: field))]
    }
}

extension ConnectionStateMachine.Settings {
    init(_ configuration: ServerConfiguration, methods: [UInt64]) {
        self.init(maxFrameBytes: configuration.maxFrameBytes, maxInFlight: configuration.maxInFlightPerConnection,
                  maxOutputBytes: configuration.maxOutputBytes, defaultDeadlineMs: configuration.defaultDeadlineMs,
                  handshakeTimeoutMs: configuration.handshakeTimeoutMs, frameTimeoutMs: configuration.frameTimeoutMs,
                  idleTimeoutMs: configuration.idleTimeoutMs, writeTimeoutMs: configuration.writeTimeoutMs,
                  instanceID: configuration.instanceID, methods: methods)
    }
}
