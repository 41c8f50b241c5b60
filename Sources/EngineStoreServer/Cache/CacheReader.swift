import Foundation
import Hiredis
import Logging

/// Redis reads for the read RPCs, on threads of their own (hiredis calls block). A read that
/// cannot reach Redis gets `nil` and falls back to Postgres; it never waits for a reconnect.
final class CacheReader: Sendable {
    typealias Read = @Sendable (RedisConnection?) -> Void

    private let endpoint: RedisEndpoint
    private let queue = BlockingQueue<Read>()
    private let threads: Int
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    init(endpoint: RedisEndpoint, threads: Int = 2, logger: Logger) {
        self.endpoint = endpoint
        self.threads = max(1, threads)
        self.logger = logger
    }

    func start() {
        for i in 0..<threads {
            let t = Thread { [self] in run() }
            t.name = "engine-store-redis-read-\(i)"
            t.start()
        }
    }

    func submit(_ read: @escaping Read) { queue.push(read) }

    func shutdown() {
        queue.close()
        for _ in 0..<threads { finished.wait() }
    }

    private func run() {
        var connection: RedisConnection?
        var nextAttempt: UInt64 = 0
        while true {
            let reads = queue.popBatch(max: 64)
            if reads.isEmpty { break }
            for read in reads {
                if connection == nil && monotonicNanos() >= nextAttempt {
                    connection = try? RedisConnection(endpoint: endpoint, timeoutMs: 1000)
                    if connection == nil { nextAttempt = monotonicNanos() + 500_000_000 }
                }
                read(connection)
                if connection?.isBroken == true {
                    connection = nil
                    nextAttempt = monotonicNanos() + 100_000_000
                }
            }
        }
        finished.signal()
    }
}

extension RedisConnection {
    /// Runs one command for a read; a connection error returns nil (the caller falls back to Postgres).
    func read(_ args: [String]) -> RedisReply? {
        guard let reply = try? command(args) else { return nil }
        if case .error = reply { return nil }
        return reply
    }
}
