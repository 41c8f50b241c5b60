import CLinuxShims
import EngineStoreWire
import Foundation
import Glibc
import Synchronization

/// One socket to the server, driven by its own I/O thread (poll on the socket and an eventfd), so
/// callers on Swift's cooperative pool never block. Many requests may be in flight; responses are
/// matched by request id and may arrive in any order.
final class ClientConnection: Sendable {
    struct Reply: Sendable {
        let header: FrameHeader
        let payload: [UInt8]
    }

    private struct Waiter {
        let continuation: CheckedContinuation<Reply, any Error>
        let deadlineNanos: UInt64
    }

    private struct State {
        var output: [UInt8] = []
        var waiters: [UInt32: Waiter] = [:]
        var nextRequestID: UInt32 = 1
        var failure: EngineStoreError?
    }

    let socketPath: String
    private let fd: Int32
    private let wakeFD: Int32
    private let state = Mutex<State>(State())
    let maxFrameBytes = Atomic<UInt32>(WireLimits.defaultMaxFrameBytes)

    private init(socketPath: String, fd: Int32, wakeFD: Int32) {
        self.socketPath = socketPath
        self.fd = fd
        self.wakeFD = wakeFD
    }

    deinit {
        close(fd)
        close(wakeFD)
    }

    /// Connects on a fresh thread (a Unix-socket connect can wait on a full backlog), then serves I/O there.
    static func open(socketPath: String) async throws -> ClientConnection {
        try await withCheckedThrowingContinuation { (k: CheckedContinuation<ClientConnection, any Error>) in
            let thread = Thread {
                let c: ClientConnection
                do {
                    c = try connectBlocking(socketPath)
                } catch {
                    k.resume(throwing: error)
                    return
                }
                k.resume(returning: c)
                c.runLoop()
            }
            thread.name = "engine-store-client"
            thread.start()
        }
    }

    private static func connectBlocking(_ path: String) throws -> ClientConnection {
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
        let wake = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard wake >= 0 else {
            close(fd)
            throw EngineStoreError.connection("eventfd failed")
        }
        return ClientConnection(socketPath: path, fd: fd, wakeFD: wake)
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
        return try await withCheckedThrowingContinuation { k in
            let wake = state.withLock { s -> Bool? in
                if let failure = s.failure {
                    k.resume(throwing: failure)
                    return nil
                }
                var id = s.nextRequestID
                while s.waiters[id] != nil || id == 0 { id &+= 1 }
                s.nextRequestID = id &+ 1
                let header = FrameHeader(kind: .request, method: method, requestID: id, flags: flags, deadlineMs: remainingMs)
                var w = ByteWriter(capacity: 4 + FrameHeader.size + payload.count)
                Frame.encode(header: header, payload: payload, into: &w)
                s.waiters[id] = Waiter(continuation: k, deadlineNanos: deadlineNanos)
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
            if wake == true { signal() }
        }
    }

    /// Fails every waiter and stops the I/O thread.
    func shutdown() {
        fail(EngineStoreError.connection("connection closed by the client"))
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func fail(_ error: EngineStoreError) {
        let waiters = state.withLock { s -> [Waiter] in
            if s.failure == nil { s.failure = error }
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.continuation.resume(throwing: error) }
        signal()
    }

    private func runLoop() {
        var input: [UInt8] = []
        var inputStart = 0
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        var lastSweep: UInt64 = 0
        while true {
            // Write what callers queued, under the lock so bytes never reorder with a caller's direct send.
            let (wantsWrite, failed, hasWaiters, broken) = state.withLock { s -> (Bool, Bool, Bool, Bool) in
                var broken = false
                while !s.output.isEmpty {
                    let n = s.output.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                    if n > 0 {
                        if n == s.output.count { s.output.removeAll(keepingCapacity: true) } else { s.output.removeFirst(n) }
                    } else {
                        if n < 0 && errno != EAGAIN && errno != EINTR { broken = true }
                        break
                    }
                }
                return (!s.output.isEmpty, s.failure != nil, !s.waiters.isEmpty, broken)
            }
            if failed { break }
            if broken {
                fail(EngineStoreError.connection("connection to \(socketPath) lost while writing"))
                return
            }
            var fds = [
                pollfd(fd: fd, events: Int16(POLLIN) | (wantsWrite ? Int16(POLLOUT) : 0), revents: 0),
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
            ]
            let timeout: Int32 = hasWaiters ? 5 : 1000
            let rc = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 2, timeout) }
            if rc < 0 && errno != EINTR { fail(EngineStoreError.connection("poll failed")); return }
            if fds[1].revents != 0 {
                var v: UInt64 = 0
                _ = read(wakeFD, &v, 8)
            }
            if fds[0].revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
                var closed = false
                while true {
                    let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        input.append(contentsOf: scratch[0..<n])
                        if n < scratch.count { break }
                    } else if n == 0 {
                        closed = true
                        break
                    } else {
                        if errno != EAGAIN && errno != EINTR { closed = true }
                        break
                    }
                }
                // Hand out complete frames.
                while true {
                    let step: FrameParser.Step
                    do {
                        step = try FrameParser.next(in: input[inputStart...], maxFrameBytes: UInt32.max)
                    } catch {
                        fail(EngineStoreError(code: .protocolError, message: "bad frame from server: \(error)", retryable: true))
                        return
                    }
                    guard case .frame(let frame, let consumed) = step else { break }
                    deliver(Reply(header: frame.header, payload: Array(frame.payload)))
                    inputStart += consumed
                }
                if inputStart == input.count { input.removeAll(keepingCapacity: true); inputStart = 0 }
                else if inputStart > 1 << 16 { input.removeFirst(inputStart); inputStart = 0 }
                if closed {
                    fail(EngineStoreError.connection("server closed the connection"))
                    return
                }
            }
            let now = monotonicNanos()
            if hasWaiters && now - lastSweep >= 5_000_000 {
                lastSweep = now
                sweepDeadlines(now)
            }
        }
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
        let waiter = state.withLock { $0.waiters.removeValue(forKey: reply.header.requestID) }
        waiter?.continuation.resume(returning: reply)
    }

    private func sweepDeadlines(_ now: UInt64) {
        let expired = state.withLock { s -> [Waiter] in
            var out: [Waiter] = []
            for (id, w) in s.waiters where w.deadlineNanos <= now {
                out.append(w)
                s.waiters[id] = nil
            }
            return out
        }
        for w in expired {
            w.continuation.resume(throwing: EngineStoreError(code: .deadlineExceeded, message: "no answer before the deadline", retryable: true))
        }
    }
}

@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
