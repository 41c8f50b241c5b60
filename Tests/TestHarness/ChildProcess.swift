import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every child process the tests start goes through here.
public enum ChildProcess {
    /// Held for the whole of `Process.run()`. On Linux, Foundation learns that a child exited when the
    /// child's end of a socket pair closes. That end is not close-on-exec, and the parent closes its copy
    /// only after posix_spawn returns. A child spawned by another thread in that window inherits the
    /// end too, and keeps it open for as long as it lives: an `initdb` that finished then looks running
    /// for as long as a PostgreSQL that another test started at the same moment (CI saw a 120 s
    /// timeout). Spawning one at a time closes the window.
    private static let spawnLock = Mutex(())

    /// `process.run()` with no signals blocked on the calling thread while it spawns. A child inherits the
    /// spawning thread's signal mask, and Swift concurrency's (libdispatch) worker threads block nearly every
    /// signal: a Redis started from a test would then ignore SIGTERM. The old mask is restored right after.
    public static func spawn(_ process: Process) throws {
        try spawnLock.withLock { _ in
            var none = sigset_t()
            var saved = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, &saved)
            defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
            try process.run()
        }
    }
}
