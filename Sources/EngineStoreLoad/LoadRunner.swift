import EngineStoreClient
import Foundation
import Glibc
import Histogram
import Synchronization

/// Drives the server with a mix of RPCs over `connections × inFlight` concurrent slots and reports
/// throughput, errors by code and latency percentiles per RPC.
public enum LoadRunner {
    public static func run(_ configuration: LoadConfiguration) async throws -> LoadReport {
        let c = configuration
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let seed = c.seed ?? UInt64.random(in: 0...UInt64.max)
        // One I/O thread for every connection, which also runs the workers: a reply resumes its worker
        // on the thread that read it, and the worker's next request goes out from there (no thread
        // hops, no wake-ups: the load tester's CPU per request was mostly context switches).
        let loop = ClientEventLoop(name: "engine-store-load")
        let clients = (0..<max(1, c.connections)).map { i -> EngineStoreClient in
            var config = ClientConfiguration(socketPath: c.socketPaths[i % c.socketPaths.count])
            config.defaultTimeout = .milliseconds(Int(c.timeoutSeconds * 1000))
            config.clientName = "engine-store-load"
            config.eventLoop = loop
            return EngineStoreClient(configuration: config)
        }
        // `--duplicate-rate` sends a write on a second connection as well: the next one, or an extra
        // one when there is only one.
        let extra: EngineStoreClient? = c.duplicateRate > 0 && clients.count == 1 ? {
            var config = ClientConfiguration(socketPath: c.socketPath)
            config.defaultTimeout = .milliseconds(Int(c.timeoutSeconds * 1000))
            config.clientName = "engine-store-load"
            config.eventLoop = loop
            return EngineStoreClient(configuration: config)
        }() : nil
        for client in clients + (extra.map { [$0] } ?? []) { try await client.connect() }

        let slots = clients.count * max(1, c.inFlight)
        let counters = Counters()

        let start = ContinuousClock.now
        let startNanos = monotonic()
        // The worker loop reads one clock (monotonic nanoseconds) twice a request, not four times.
        let measureFromNanos = startNanos + UInt64(max(0, c.warmup) * 1e9)
        let stopAtNanos = c.duration.map { measureFromNanos + UInt64(max(0, $0) * 1e9) }
        let limit = c.count
        // Open loop: one shared schedule of intended start times.
        let interval = c.rate.map { UInt64(1_000_000_000 / max($0, 0.001)) }
        // Without --verify nothing reads the acknowledged ids: not collecting them saved the
        // loader a set insert (and often a string) per write.
        let keepIDs = c.verifyPostgresURL != nil

        let progressTask: Task<Void, Never>? = c.progress ? Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let elapsed = ContinuousClock.now - start
                let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let done = counters.completed.load(ordering: .relaxed)
                let line = String(format: "\r%6.1fs  requests=%d  %.0f/s  errors=%d   ", secs, done, Double(done) / max(secs, 0.001),
                                  counters.failed.load(ordering: .relaxed))
                FileHandle.standardError.write(Data(line.utf8))
            }
        } : nil

        let clock = LoadClock()
        // One recorder for every worker: they all run on the loop's thread, so its lock is never
        // contended, and one set of histograms stays in cache. A recorder per worker (64 at 4 × 16,
        // each histogram ~160 KiB) cost 0.3–9 % more of the loader's CPU per trade event (5 of 5
        // alternating rounds).
        let shared = SharedRecorder()
        let ack = await withTaskGroup(of: Acknowledged.self) { group in
            for slot in 0..<slots {
                let client = clients[slot % clients.count]
                let twin: EngineStoreClient? = c.duplicateRate > 0 ? (extra ?? clients[(slot + 1) % clients.count]) : nil
                group.addTask(executorPreference: loop) {
                    var workload = Workload(run: run, worker: slot, configuration: c, seed: seed, clock: clock)
                    var ack = Acknowledged(keepsIDs: keepIDs)
                    var mixSeeder = SplitMix(seed: ~seed ^ (UInt64(slot) &* 0xD6E8_FEB8_6659_FD93))
                    var mixRNG = SplitMix(seed: mixSeeder.next())
                    while true {
                        let n = counters.issued.add(1, ordering: .relaxed).newValue
                        if let limit, n > limit { break }
                        let now = monotonic()
                        if let stopAtNanos, now >= stopAtNanos { break }
                        var intended = now
                        if let interval {
                            intended = startNanos + UInt64(n - 1) * interval
                            if intended > now { try? await Task.sleep(for: .nanoseconds(Int(intended - now))) }
                        }
                        let op = c.mix.pick(&mixRNG)
                        let measuring = max(now, intended) >= measureFromNanos
                        do {
                            try await workload.perform(op, on: client, twin: twin, ack: &ack)
                            let done = monotonic()
                            shared.recorder.withLock { r in
                                r.recordCompletion(second: Int((done - startNanos) / 1_000_000_000))
                                if measuring { r.record(op, micros: (done - intended) / 1000) }
                            }
                        } catch let e as EngineStoreError {
                            counters.failed.add(1, ordering: .relaxed)
                            if measuring {
                                let micros = (monotonic() - intended) / 1000
                                shared.recorder.withLock { $0.recordError(op, "\(e.code)", micros: micros) }
                            }
                        } catch {
                            counters.failed.add(1, ordering: .relaxed)
                            if measuring { shared.recorder.withLock { $0.recordError(op, "client", micros: 0) } }
                        }
                        counters.completed.add(1, ordering: .relaxed)
                    }
                    return ack
                }
            }
            var ack = Acknowledged(keepsIDs: keepIDs)
            for await a in group { ack.merge(a) }
            return ack
        }
        progressTask?.cancel()
        if c.progress { FileHandle.standardError.write(Data("\n".utf8)) }
        let end = monotonic()
        // Measured time: from the end of the warm-up (none if the run ended inside it).
        let seconds = end > measureFromNanos ? Double(end - measureFromNanos) / 1e9 : 0
        for client in clients { await client.close() }
        await extra?.close()

        let recorder = shared.recorder.withLock { $0 }
        var report = LoadReport(configuration: c, run: run, seconds: seconds, recorder: recorder, acknowledged: ack)
        if let url = c.verifyPostgresURL {
            let acknowledged = ack
            let verifyStart = monotonic()
            report.verification = try await onThread { try Verifier.verify(postgresURL: url, run: run, acknowledged: acknowledged) }
            report.verifySeconds = Double(monotonic() - verifyStart) / 1e9
        }
        return report
    }
}

extension LoadRunner {
    /// Checks a finished run's acknowledged writes against Postgres again (e.g. after a fault).
    public static func reverify(report: LoadReport, postgresURL: String) throws -> Verification {
        try Verifier.verify(postgresURL: postgresURL, run: report.run, acknowledged: report.acknowledged)
    }
}

@inline(__always)
func monotonic() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Shared counters of a run.
final class Counters: Sendable {
    let issued = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
}

/// Runs blocking libpq work on a thread of its own (never on the cooperative pool).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (k: CheckedContinuation<T, any Error>) in
        Thread { do { k.resume(returning: try body()) } catch { k.resume(throwing: error) } }.start()
    }
}
