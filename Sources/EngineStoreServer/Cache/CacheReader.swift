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
    private let workers: [WorkerThread]
    /// Reconnect waits: after a failed connect, and after a read found the connection broken.
    static let connectRetryMs: UInt64 = 500
    static let brokenRetryMs: UInt64 = 100
    static let timeoutMs = 1000

    init(endpoint: RedisEndpoint, threads: Int = 2, logger: Logger) {
        self.endpoint = endpoint
        self.threads = max(1, threads)
        self.logger = logger
        self.workers = (0..<max(1, threads)).map { WorkerThread(name: "engine-store-redis-read-\($0)") }
    }

    func start() {
        for worker in workers { worker.start { [self] in run() } }
    }

    func submit(_ read: @escaping Read) { queue.push(read) }

    func shutdown() {
        queue.close()
        for worker in workers { worker.join() }
    }

    private func run() {
        var connection: RedisConnection?
        var retry = Backoff(initialMs: Self.connectRetryMs, maxMs: Self.connectRetryMs)
        while true {
            let reads = queue.popBatch(max: 64)
            if reads.isEmpty { break }
            for read in reads {
                if connection == nil && retry.isDue(monotonicNanos()) {
                    connection = try? RedisConnection(endpoint: endpoint, timeoutMs: Self.timeoutMs)
                    if connection == nil { retry.next(now: monotonicNanos()) }
                }
                read(connection)
                if connection?.isBroken == true {
                    connection = nil
                    retry.retry(afterMs: Self.brokenRetryMs, now: monotonicNanos())
                }
            }
        }
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
