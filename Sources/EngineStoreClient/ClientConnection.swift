import CLinuxShims
import EngineStoreWire
import Foundation
import Glibc
import Synchronization

/// One socket to the server, served by a `ClientEventLoop` (one epoll thread for many connections),
/// so callers on Swift's cooperative pool never block. Many requests may be in flight; responses are
/// matched by request id and may arrive in any order.
final class ClientConnection: Sendable {
    struct Reply: Sendable {
        let header: FrameHeader
        let payload: [UInt8]
    }

    private struct Waiter {
        let continuation: ReplyContinuation
        let deadlineNanos: UInt64
    }

    private struct State {
        var output: [UInt8] = []
        var waiters: [UInt32: Waiter] = [:]
        var nextRequestID: UInt32 = 1
        var failure: EngineStoreError?
    }

    /// What only the loop thread touches (behind a lock no other thread takes, so never contended).
    private struct ReadState {
        /// Bytes read: `input[inputStart..<inputEnd]` are not yet parsed; the socket reads straight
        /// into the space after them (no scratch copy).
        var input = [UInt8](repeating: 0, count: 1 << 16)
        var inputStart = 0
        var inputEnd = 0
        var pollingWrite = false

        /// Room for at least 16 KiB after `inputEnd`: the unparsed bytes move to the front, and the
        /// buffer doubles when they fill most of it (a frame larger than the buffer).
        mutating func makeRoom() {
            if inputStart > 0 && input.count - inputEnd < 1 << 14 {
                let n = inputEnd - inputStart
                input.withUnsafeMutableBytes { b in
                    if n > 0 { b.baseAddress!.copyMemory(from: b.baseAddress! + inputStart, byteCount: n) }
                }
                inputStart = 0
                inputEnd = n
            }
            if input.count - inputEnd < 1 << 14 {
                input.append(contentsOf: repeatElement(0, count: input.count))
            }
        }
    }

    let socketPath: String
    let fd: Int32
    let loop: ClientEventLoop
    private let state = Mutex<State>(State())
    private let reader = Mutex<ReadState>(ReadState())
    let maxFrameBytes = Atomic<UInt32>(WireLimits.defaultMaxFrameBytes)

    private init(socketPath: String, fd: Int32, loop: ClientEventLoop) {
        self.socketPath = socketPath
        self.fd = fd
        self.loop = loop
    }

    deinit {
        close(fd)
    }

    /// Connects on a fresh thread (a Unix-socket connect can wait on a full backlog), then hands the
    /// socket to the loop.
    static func open(socketPath: String, loop: ClientEventLoop = .shared) async throws -> ClientConnection {
        try await withCheckedThrowingContinuation { (k: CheckedContinuation<ClientConnection, any Error>) in
            let thread = Thread {
                do {
                    let c = ClientConnection(socketPath: socketPath, fd: try connectBlocking(socketPath), loop: loop)
                    loop.register(c)
                    k.resume(returning: c)
                } catch {
                    k.resume(throwing: error)
                }
            }
            thread.name = "engine-store-connect"
            thread.start()
        }
    }

    private static func connectBlocking(_ path: String) throws -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw EngineStoreError(code: .invalidArgument, message: "socket path too long: \(path)", retryable: false)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw EngineStoreError.connection("socket: \(String(cString: strerror(errno)))") }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) }
        }
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw EngineStoreError.connection("connect \(path): \(e)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    var isBroken: Bool { state.withLock { $0.failure != nil } }

    /// Sends one request and suspends until its response or error frame, or the deadline.
    func request(method: UInt16, payload: [UInt8], deadlineNanos: UInt64, flags: FrameFlags = []) async throws -> Reply {
        let now = monotonicNanos()
        guard deadlineNanos > now else {
            throw EngineStoreError(code: .deadlineExceeded, message: "deadline passed before sending", retryable: true)
        }
        let remainingMs = UInt32(clamping: (deadlineNanos - now) / 1_000_000 + 1)
        guard payload.count + FrameHeader.size <= Int(maxFrameBytes.load(ordering: .relaxed)) else {
            throw EngineStoreError(code: .resourceExhausted, message: "request of \(payload.count) bytes exceeds the server's frame limit", retryable: false)
        }
        // On the loop's own thread (a task that prefers the loop, like the load tester's) the frame
        // waits in the output for the loop's flush after this turn: the requests that the replies of
        // one read resumed leave in one send, and the server reads them in one wake-up, instead of a
        // send and a wake-up each.
        let onLoop = loop.isCurrentThread
        return try await withReplyContinuation { k in
            let wake = state.withLock { s -> Bool? in
                if let failure = s.failure {
                    k.resume(throwing: failure)
                    return nil
                }
                var id = s.nextRequestID
                while id == 0 || s.waiters.index(forKey: id) != nil { id &+= 1 }
                s.nextRequestID = id &+ 1
                let header = FrameHeader(kind: .request, method: method, requestID: id, flags: flags, deadlineMs: remainingMs)
                var w = ByteWriter(capacity: 4 + FrameHeader.size + payload.count)
                Frame.encode(header: header, payload: payload, into: &w)
                s.waiters[id] = Waiter(continuation: k, deadlineNanos: deadlineNanos)
                loop.outstanding.add(1, ordering: .relaxed)
                if s.output.isEmpty && onLoop {
                    s.output = w.bytes
                    return true
                }
                // Nothing queued ahead of us: write straight from this thread (the socket is
                // non-blocking, so this never blocks); only a remainder goes to the I/O thread.
                if s.output.isEmpty {
                    let frame = w.bytes
                    let sent = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                    if sent == frame.count { return false }
                    s.output = sent > 0 ? Array(frame[sent...]) : frame
                    return true
                }
                s.output.append(contentsOf: w.bytes)
                return false
            }
            if wake == true { loop.flush(self) }
        }
    }

    /// Fails every waiter and leaves the loop.
    func shutdown() {
        fail(EngineStoreError.connection("connection closed by the client"))
    }

    private func fail(_ error: EngineStoreError) {
        let (waiters, first) = state.withLock { s -> ([Waiter], Bool) in
            let first = s.failure == nil
            if first { s.failure = error }
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return (w, first)
        }
        loop.outstanding.add(-waiters.count, ordering: .relaxed)
        for w in waiters { w.continuation.resume(throwing: error) }
        guard first else { return }
        // The server sees the close now, not when the loop has let go of this object and `deinit`
        // closes the descriptor (a closed client used to hold its server slot until then).
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        loop.unregister(self)
    }

    var hasOutput: Bool { state.withLock { !$0.output.isEmpty } }

    /// Loop thread: the socket's EPOLLOUT interest, kept in step by the loop.
    var pollingWrite: Bool {
        get { reader.withLock { $0.pollingWrite } }
        set { reader.withLock { $0.pollingWrite = newValue } }
    }

    /// Loop thread: writes what callers queued, under the lock so bytes never reorder with a caller's
    /// direct send. True while output remains (the loop then waits for EPOLLOUT).
    func flushOutput() -> Bool {
        let (remaining, broken) = state.withLock { s -> (Bool, Bool) in
            while !s.output.isEmpty {
                let n = s.output.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    if n == s.output.count { s.output.removeAll(keepingCapacity: true) } else { s.output.removeFirst(n) }
                } else {
                    return (true, n < 0 && errno != EAGAIN && errno != EINTR)
                }
            }
            return (false, false)
        }
        if broken {
            fail(EngineStoreError.connection("connection to \(socketPath) lost while writing"))
            return false
        }
        return remaining
    }

    /// Loop thread: reads what the socket has and hands out complete frames.
    func readable() {
        var replies: [Reply] = []
        var outcome: EngineStoreError?
        reader.withLock { r in
            var closed = false
            while true {
                r.makeRoom()
                let end = r.inputEnd
                let room = r.input.count - end
                let n = r.input.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, room) }
                if n > 0 {
                    r.inputEnd += n
                    if n < room { break }
                } else if n == 0 {
                    closed = true
                    break
                } else {
                    if errno != EAGAIN && errno != EINTR { closed = true }
                    break
                }
            }
            while true {
                let step: FrameParser.Step
                do {
                    step = try FrameParser.next(in: r.input[r.inputStart..<r.inputEnd], maxFrameBytes: UInt32.max)
                } catch {
                    outcome = EngineStoreError(code: .protocolError, message: "bad frame from server: \(error)", retryable: true)
                    return
                }
                guard case .frame(let frame, let consumed) = step else { break }
                replies.append(Reply(header: frame.header, payload: Array(frame.payload)))
                r.inputStart += consumed
            }
            if r.inputStart == r.inputEnd { r.inputStart = 0; r.inputEnd = 0 }
            if closed { outcome = EngineStoreError.connection("server closed the connection") }
        }
        for reply in replies { deliver(reply) }
        if let outcome { fail(outcome) }
    }

    private func deliver(_ reply: Reply) {
        if reply.header.kind == .notice {
            // going_away: let in-flight requests finish; new ones go to a new connection.
            return
        }
        if reply.header.requestID == 0 && reply.header.kind == .error {
            let message = (try? ErrorPayload(payload: reply.payload)).map { EngineStoreError(payload: $0) }
                ?? EngineStoreError.connection("server closed the connection")
            fail(EngineStoreError(code: message.code, message: message.message, retryable: true))
            return
        }
        guard let waiter = state.withLock({ $0.waiters.removeValue(forKey: reply.header.requestID) }) else { return }
        loop.outstanding.add(-1, ordering: .relaxed)
        waiter.continuation.resume(returning: reply)
    }

    /// Loop thread: fails the requests whose deadline passed.
    func sweepDeadlines(_ now: UInt64) {
        let expired = state.withLock { s -> [Waiter] in
            var out: [Waiter] = []
            for (id, w) in s.waiters where w.deadlineNanos <= now {
                out.append(w)
                s.waiters[id] = nil
            }
            return out
        }
        loop.outstanding.add(-expired.count, ordering: .relaxed)
        for w in expired {
            w.continuation.resume(throwing: EngineStoreError(code: .deadlineExceeded, message: "no answer before the deadline", retryable: true))
        }
    }
}

// Each waiter is resumed exactly once: whoever removes it from `waiters` (under the state lock)
// resumes it, and a request refused before it is stored resumes it at once. Release builds use the
// unchecked continuation (the checked one allocates and frees a canary object per request); debug
// builds, which the tests run, keep the checked one to catch a broken rule.
#if DEBUG
typealias ReplyContinuation = CheckedContinuation<ClientConnection.Reply, any Error>
@inline(__always)
func withReplyContinuation(_ body: (ReplyContinuation) -> Void) async throws -> ClientConnection.Reply {
    try await withCheckedThrowingContinuation(body)
}
#else
typealias ReplyContinuation = UnsafeContinuation<ClientConnection.Reply, any Error>
@inline(__always)
func withReplyContinuation(_ body: (ReplyContinuation) -> Void) async throws -> ClientConnection.Reply {
    try await withUnsafeThrowingContinuation(body)
}
#endif

@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
