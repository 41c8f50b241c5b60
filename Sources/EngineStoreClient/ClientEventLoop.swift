import CLinuxShims
import Foundation
import Glibc
import Synchronization

/// One I/O thread for many client connections: epoll over their sockets and an eventfd. It is also a
/// `TaskExecutor`: a task that prefers it (`withTaskExecutorPreference`, `addTask(executorPreference:)`)
/// runs on this thread, so a reply resumes its caller here, with no hop to another thread and no
/// wake-up, and the caller's next request is sent from here too. Without that preference a reply
/// resumes its caller on Swift's global pool, as any continuation does.
///
/// Nothing on this thread blocks: sockets are non-blocking, and jobs of tasks that prefer the loop are
/// the caller's business (the load tester's only await client calls).
public final class ClientEventLoop: TaskExecutor, Sendable {
    /// The loop every client uses unless its configuration names another.
    public static let shared = ClientEventLoop(name: "engine-store-client")

    private enum Message: Sendable {
        case job(UnownedJob)
        case register(ClientConnection)
        case unregister(ClientConnection)
        case flush(ClientConnection)
    }

    private struct Inbox: Sendable {
        var messages: [Message] = []
        var started = false
    }

    private let name: String
    private let epfd: Int32
    private let wakeFD: Int32
    private let inbox = Mutex<Inbox>(Inbox())
    /// The loop thread's id, once it runs (0 before): jobs enqueued from it need no wake-up.
    private let loopThread = Atomic<UInt>(0)
    /// Requests waiting for an answer on any connection of this loop: the loop sweeps deadlines
    /// every 5 ms while there are some, and sleeps up to a second otherwise.
    let outstanding = Atomic<Int>(0)

    public init(name: String = "engine-store-client") {
        self.name = name
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        precondition(epfd >= 0 && wakeFD >= 0, "epoll/eventfd: \(String(cString: strerror(errno)))")
        var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(UInt32(bitPattern: wakeFD))))
        epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        post(.job(UnownedJob(job)))
    }

    /// True on the loop's own thread.
    public var isCurrentThread: Bool { loopThread.load(ordering: .relaxed) == UInt(pthread_self()) }

    func register(_ connection: ClientConnection) { post(.register(connection)) }
    func unregister(_ connection: ClientConnection) { post(.unregister(connection)) }
    /// A connection has output its caller could not send at once.
    func flush(_ connection: ClientConnection) { post(.flush(connection)) }

    /// Queues a message; the loop is woken only when its inbox goes from empty to not, and not by
    /// its own thread (which reads the inbox before it sleeps).
    private func post(_ message: Message) {
        let (wake, start) = inbox.withLock { i -> (Bool, Bool) in
            let wasEmpty = i.messages.isEmpty
            i.messages.append(message)
            let start = !i.started
            i.started = true
            return (wasEmpty, start)
        }
        if start {
            let thread = Thread { [self] in run() }
            thread.name = name
            thread.start()
        } else if wake && !isCurrentThread {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    private func run() {
        loopThread.store(UInt(pthread_self()), ordering: .relaxed)
        var connections: [Int32: ClientConnection] = [:]
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        var pending: [Message] = []
        var lastSweep: UInt64 = 0
        var idle = false  // the inbox was empty after the last pass: the loop may sleep
        while true {
            let timeout: Int32 = !idle ? 0 : (outstanding.load(ordering: .relaxed) > 0 ? 5 : 1000)
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, Int32($0.count), timeout) }
            for i in 0..<max(0, Int(n)) {
                let fd = Int32(truncatingIfNeeded: events[i].data.u64)
                if fd == wakeFD {
                    var v: UInt64 = 0
                    _ = read(wakeFD, &v, 8)
                    continue
                }
                guard let c = connections[fd] else { continue }
                let ev = events[i].events
                if ev & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { c.readable() }
                if ev & EPOLLOUT.rawValue != 0 { setWriteInterest(c, c.flushOutput()) }
            }
            inbox.withLock { swap(&$0.messages, &pending) }
            idle = pending.isEmpty
            for message in pending {
                switch message {
                case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                case .register(let c):
                    var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(UInt32(bitPattern: c.fd))))
                    if epoll_ctl(epfd, EPOLL_CTL_ADD, c.fd, &ev) == 0 { connections[c.fd] = c } else { c.shutdown() }
                    if c.hasOutput { setWriteInterest(c, c.flushOutput()) }
                case .unregister(let c):
                    if connections[c.fd] === c {
                        epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nil)
                        connections[c.fd] = nil
                    }
                case .flush(let c):
                    if connections[c.fd] === c { setWriteInterest(c, c.flushOutput()) }
                }
            }
            pending.removeAll(keepingCapacity: true)
            let now = monotonicNanos()
            if now &- lastSweep >= 5_000_000 {
                lastSweep = now
                if outstanding.load(ordering: .relaxed) > 0 { for c in connections.values { c.sweepDeadlines(now) } }
            }
        }
    }

    /// EPOLLOUT only while a connection has output the socket did not take.
    private func setWriteInterest(_ c: ClientConnection, _ wantsWrite: Bool) {
        guard wantsWrite != c.pollingWrite else { return }
        c.pollingWrite = wantsWrite
        var ev = epoll_event(events: EPOLLIN.rawValue | (wantsWrite ? EPOLLOUT.rawValue : 0),
                             data: epoll_data_t(u64: UInt64(UInt32(bitPattern: c.fd))))
        epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev)
    }
}
