import Foundation
import Glibc
import Synchronization
import Testing
import TestHarness

/// The harness's child processes: what the fault tests and every cluster start-up rely on.
@Suite struct ChildProcessTests {
    /// A child that has exited is seen exited, even while another thread keeps spawning children that
    /// live on. Foundation sees an exit when the child's end of a socket pair closes; a child spawned
    /// by another thread between the pair's creation and the parent closing its copy inherits that end
    /// and holds it open (the 120 s "initdb did not finish" CI failure). `ChildProcess.spawn` spawns one
    /// at a time.
    @Test func aFinishedChildIsSeenExitedWhileOtherThreadsSpawn() async throws {
        let rounds = 48
        // Open descriptors widen the window: Foundation lists them and has the child close each one.
        // Not thousands: Swift 6.3's Foundation copies each /proc/self/fd entry as a whole dirent and
        // can read past the end of readdir's buffer when the listing spans more than one buffer (a
        // SIGSEGV in Process.run, seen with 2,000 here).
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let filler = (0..<min(600, Int(limit.rlim_cur) / 4)).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { for fd in filler where fd >= 0 { close(fd) } }
        let sleepers = Mutex<[pid_t]>([])
        let spawning = Atomic<Bool>(true)
        defer {
            for pid in sleepers.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
        let spawner = Task.detached {
            try await runOnDedicatedThread(name: "sleeper-spawner") {
                while spawning.load(ordering: .relaxed) && sleepers.withLock({ $0.count }) < 200 {
                    let sleeper = Process()
                    sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
                    sleeper.arguments = ["60"]
                    sleeper.standardInput = FileHandle.nullDevice
                    sleeper.standardOutput = FileHandle.nullDevice
                    sleeper.standardError = FileHandle.nullDevice
                    try ChildProcess.spawn(sleeper)
                    sleepers.withLock { $0.append(sleeper.processIdentifier) }
                }
            }
        }
        let stuck = try await runOnDedicatedThread(name: "short-spawner") { () throws -> Int in
            var stuck = 0
            for _ in 0..<rounds {
                let short = Process()
                short.executableURL = URL(fileURLWithPath: "/bin/true")
                short.standardInput = FileHandle.nullDevice
                short.standardOutput = FileHandle.nullDevice
                short.standardError = FileHandle.nullDevice
                try ChildProcess.spawn(short)
                let deadline = ContinuousClock.now + .seconds(5)
                while short.isRunning && ContinuousClock.now < deadline { usleep(2_000) }
                if short.isRunning { stuck += 1 }
            }
            return stuck
        }
        spawning.store(false, ordering: .relaxed)
        try await spawner.value
        #expect(sleepers.withLock { $0.count } > 0, "the other thread spawned nothing meanwhile")
        #expect(stuck == 0, "\(stuck) of \(rounds) exited children still looked running after 5 s")
    }
}
