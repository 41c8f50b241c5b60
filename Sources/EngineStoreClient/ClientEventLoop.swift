import CLinuxShims
import EventPoll
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
    private let wakeup: Wakeup
    private let inbox = Mutex<Inbox>(Inbox())
    /// The loop thread's id, once it runs (0 before): jobs enqueued from it need no wake-up.
    private let loopThread = Atomic<UInt>(0)
    /// Requests waiting for an answer on any connection of this loop: the loop sweeps deadlines
    /// every 5 ms while there are some, and sleeps up to a second otherwise.
    let outstanding = Atomic<Int>(0)

    public init(name: String = "engine-store-client") {
        self.name = name
        do { wakeup = try Wakeup() } catch { preconditionFailure("client event loop: \(error)") }
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
            wakeup.signal()
        }
    }

    private func run() {
        loopThread.store(UInt(pthread_self()), ordering: .relaxed)
        let poller: Poller
        do {
            poller = try Poller()
            try poller.register(fd: wakeup.fd, token: Self.token(wakeup.fd), events: EPOLLIN.rawValue)
        } catch {
            preconditionFailure("client event loop: \(error)")
        }
        var connections: [Int32: ClientConnection] = [:]
        var pending: [Message] = []
        var lastSweep: UInt64 = 0
        var idle = false  // the inbox was empty after the last pass: the loop may sleep
        while true {
            let timeout: Int32 = !idle ? 0 : (outstanding.load(ordering: .relaxed) > 0 ? 5 : 1000)
            _ = poller.wait(timeoutMs: timeout) { token, events in
                let fd = Int32(truncatingIfNeeded: token)
                if fd == wakeup.fd { wakeup.clear(); return }
                guard let c = connections[fd] else { return }
                if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { c.readable() }
                if events & EPOLLOUT.rawValue != 0 { setWriteInterest(c, c.flushOutput(), poller) }
            }
            inbox.withLock { swap(&$0.messages, &pending) }
            idle = pending.isEmpty
            for message in pending {
                switch message {
                case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                case .register(let c):
                    do {
                        try poller.register(fd: c.fd, token: Self.token(c.fd), events: EPOLLIN.rawValue)
                        connections[c.fd] = c
                    } catch {
                        c.shutdown()
                    }
                    if c.hasOutput { setWriteInterest(c, c.flushOutput(), poller) }
                case .unregister(let c):
                    if connections[c.fd] === c {
                        poller.unregister(fd: c.fd)
                        connections[c.fd] = nil
                    }
                case .flush(let c):
                    if connections[c.fd] === c { setWriteInterest(c, c.flushOutput(), poller) }
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

    private static func token(_ fd: Int32) -> UInt64 { UInt64(UInt32(bitPattern: fd)) }

    /// EPOLLOUT only while a connection has output the socket did not take.
    private func setWriteInterest(_ c: ClientConnection, _ wantsWrite: Bool, _ poller: Poller) {
        guard wantsWrite != c.pollingWrite else { return }
        c.pollingWrite = wantsWrite
        poller.modify(fd: c.fd, token: Self.token(c.fd), events: EPOLLIN.rawValue | (wantsWrite ? EPOLLOUT.rawValue : 0))
    }
}
