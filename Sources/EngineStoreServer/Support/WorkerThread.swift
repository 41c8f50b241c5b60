import CLinuxShims
import Foundation

/// A named thread that runs one body, and a way to wait until that body has returned.
///
/// Created unstarted (so an owner can keep it in a `let`), started once with `start(_:)`;
/// `join()` blocks until the body has finished, and may be called any number of times, from
/// any thread. Joining a thread that was never started blocks until it is started and finishes.
final class WorkerThread: Sendable {
    let name: String
    /// Signalled once when the body returns; `join` takes the signal and puts it back.
    private let finished = DispatchSemaphore(value: 0)

    init(name: String) {
        self.name = name
    }

    /// The name the kernel shows (`perf`, `top -H`), which keeps 15 bytes: "engine-store-pg-1" becomes
    /// "es-pg-1". Foundation's `Thread.name` does not reach the kernel on Linux.
    var kernelName: String {
        String(decoding: (name.hasPrefix("engine-store-") ? "es-" + name.dropFirst(13) : name).utf8.prefix(15), as: UTF8.self)
    }

    /// Starts a new thread that runs `body`.
    func start(_ body: @escaping @Sendable () -> Void) {
        let kernelName = kernelName
        let thread = Thread { [finished] in
            es_set_thread_name(kernelName)
            body()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Blocks the calling thread until the body has returned.
    func join() {
        finished.wait()
        finished.signal()
    }

    /// Starts a thread whose end nobody waits for (it stops on a flag or a closed descriptor).
    static func detach(name: String, _ body: @escaping @Sendable () -> Void) {
        WorkerThread(name: name).start(body)
    }
}
