import CLinuxShims
import Glibc

/// Level-triggered epoll over descriptors named by 64-bit tokens. Only the loop thread uses it.
public final class Poller {
    private let epfd: Int32
    private var events = [epoll_event](repeating: epoll_event(), count: 256)

    public init() throws {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SystemError("epoll_create1") }
    }

    deinit { close(epfd) }

    public func register(fd: Int32, token: UInt64, events: UInt32) throws {
        var ev = epoll_event(events: events, data: epoll_data_t(u64: token))
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else { throw SystemError("epoll_ctl ADD") }
    }

    public func modify(fd: Int32, token: UInt64, events: UInt32) {
        var ev = epoll_event(events: events, data: epoll_data_t(u64: token))
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    public func unregister(fd: Int32) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
    }

    /// Waits up to `timeoutMs` and calls `handle(token, events)` for each ready descriptor.
    /// False when epoll_wait itself failed (not EINTR): the loop cannot go on.
    public func wait(timeoutMs: Int32, _ handle: (UInt64, UInt32) -> Void) -> Bool {
        let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, Int32($0.count), timeoutMs) }
        if n < 0 { return errno == EINTR }
        for i in 0..<Int(n) { handle(events[i].data.u64, events[i].events) }
        return true
    }
}

/// An eventfd another thread writes to wake the poller (non-blocking, close-on-exec).
public final class Wakeup: Sendable {
    public let fd: Int32

    public init() throws {
        fd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard fd >= 0 else { throw SystemError("eventfd") }
    }

    deinit { close(fd) }

    public func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Resets the counter, so level-triggered epoll stops reporting it.
    public func clear() {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }
}

/// A failed system call, named.
public struct SystemError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }
    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}
