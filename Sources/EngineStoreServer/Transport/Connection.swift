import Glibc

/// One client connection as the event loop sees it: the socket and its epoll interest around the
/// pure protocol state. Owned by the event loop thread; never shared.
final class Connection {
    let id: UInt64
    let fd: Int32
    var state: ConnectionStateMachine
    /// Current epoll interest (EPOLLIN / EPOLLOUT bits).
    var interest: UInt32 = 0
    /// On the loop's list of connections to flush at the end of this turn.
    var dirty = false
    /// Still in the loop's table (false once closed): checked instead of looking the id up again,
    /// which hashed it several times per request.
    var isOpen = true
    /// The output queue's chunk size (what one lagging reader may hold beyond its cap).
    static var chunkBytes: Int { OutputQueue.chunkBytes }

    init(id: UInt64, fd: Int32, settings: ConnectionStateMachine.Settings, now: UInt64) {
        self.id = id
        self.fd = fd
        self.state = ConnectionStateMachine(settings: settings, now: now)
    }

    /// Sends from the head of the output queue: the result of one `send(2)` (MSG_NOSIGNAL).
    func sendHead() -> Int {
        state.output.withHead { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
