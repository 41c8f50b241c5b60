/// One client connection's state. Owned by the event loop thread; never shared.
final class Connection {
    struct Pending {
        let token: UInt64
        let deadlineNanos: UInt64
        let method: UInt16
    }

    let id: UInt64
    let fd: Int32
    var input: [UInt8] = []
    var inputStart = 0
    var output: [UInt8] = []
    var outputStart = 0
    var handshaken = false
    /// Requests sent to workers and not yet answered, by request id.
    var pending: [UInt32: Pending] = [:]
    /// Set after a protocol violation: answer what is queued, then close.
    var closeAfterFlush = false
    /// Current epoll interest (EPOLLIN / EPOLLOUT bits).
    var interest: UInt32 = 0
    var dirty = false
    let openedNanos: UInt64
    var lastActivityNanos: UInt64
    /// When the oldest incomplete frame in `input` began arriving (0 = none pending).
    var partialSinceNanos: UInt64 = 0

    init(id: UInt64, fd: Int32, now: UInt64) {
        self.id = id
        self.fd = fd
        self.openedNanos = now
        self.lastActivityNanos = now
    }

    var bufferedInput: ArraySlice<UInt8> { input[inputStart...] }
    var hasOutput: Bool { outputStart < output.count }

    func consumeInput(_ n: Int) {
        inputStart += n
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 1 << 20)
            inputStart = 0
        } else if inputStart >= 1 << 16 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    func didWrite(_ n: Int) {
        outputStart += n
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
            outputStart = 0
        }
    }
}
