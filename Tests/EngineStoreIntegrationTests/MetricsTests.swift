import EngineStoreClient
import EngineStoreServer
import Foundation
import Glibc
import Testing

@Suite struct MetricsTests {
    /// Parses the Prometheus text format into "name{labels}" → value.
    func parse(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = v
        }
        return out
    }

    func value(_ m: [String: Double], _ name: String, _ labels: [String] = []) -> Double? {
        m.first { key, _ in key.hasPrefix(name) && labels.allSatisfy { key.contains($0) } }?.value
    }

    @Test func seedMetricsArePresentWithPlausibleValues() async throws {
        let s = try await RunningServer.start { $0.metricsListen = "127.0.0.1:0" }
        let client = s.client()
        for i in 0..<5 { _ = try await client.savePosition(openRequest(model: "met", symbol: "M\(i)")) }
        _ = try await client.closePosition(ClosePositionRequest(modelID: "met", symbol: "M0", exitPrice: 101, exitTimeMs: t0 + 1))
        _ = try? await client.savePosition(SavePositionRequest(modelID: "met", symbol: "X", quantity: -1))
        let redis = try s.redis()
        // A new model's hash is built by the relay after its first write (never from one field).
        #expect(try await eventually { try redis.command(["HLEN", s.namespace + "positions:met"]).integer == 4 })
        // No rebuild still owed, or it could refill the hash deleted below before the miss is read.
        #expect(try await s.cacheSettled())
        _ = try await client.openPositions(model: "met")
        _ = try redis.command(["DEL", s.namespace + "positions:met"])
        _ = try await client.openPositions(model: "met")
        _ = try await client.checkConsistency(CheckConsistencyRequest(models: ["met"]))

        let text = try await client.stats()
        let m = parse(text)
        #expect(value(m, "db_writes_total", ["table=\"positions\"", "outcome=\"ok\""]) == 5)
        #expect(value(m, "db_writes_total", ["table=\"trades\"", "outcome=\"ok\""]) == 1)
        #expect(value(m, "db_writes_total", ["table=\"positions\"", "outcome=\"rejected\""]) == 1)
        #expect((value(m, "persistence_latency_seconds_count", ["rpc=\"SavePosition\"", "stage=\"database\""]) ?? 0) >= 5)
        #expect((value(m, "persistence_latency_seconds_count", ["rpc=\"SavePosition\"", "stage=\"queue\""]) ?? 0) >= 5)
        #expect((value(m, "persistence_latency_seconds_count", ["stage=\"cache\""]) ?? 0) >= 1)
        let p50 = value(m, "persistence_latency_seconds_sum", ["rpc=\"SavePosition\"", "stage=\"total\""]) ?? -1
        #expect(p50 > 0 && p50 < 60)
        #expect(value(m, "cache_requests_total", ["family=\"positions\"", "result=\"hit\""]) == 1)
        #expect(value(m, "cache_requests_total", ["family=\"positions\"", "result=\"miss\""]) == 1)
        #expect(value(m, "cache_hit_ratio", ["family=\"positions\""]) == 0.5)
        #expect(value(m, "inconsistencies_total") == 0)
        #expect(value(m, "outbox_depth") != nil)
        #expect((value(m, "open_connections") ?? 0) >= 1)
        #expect((value(m, "frames_in_total") ?? 0) >= 9)
        #expect((value(m, "frames_out_total") ?? 0) >= 9)
        #expect(value(m, "errors_total", ["code=\"invalid_argument\""]) == 1)

        // The same text over HTTP on loopback.
        let port = try #require(s.server.metricsPort.withLock { $0 })
        let body = try httpGet(port: port, path: "/metrics")
        #expect(body.contains("db_writes_total"))
        await client.close()
        await s.stop()
    }

    /// group_commit_transactions_total counts commits: reads that go to Postgres and health pings
    /// run outside any transaction and leave it alone.
    @Test func readsAndPingsAreNotCountedAsCommits() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "cnt", symbol: "A"))
        let before = parse(try await client.stats())
        for _ in 0..<3 {
            _ = try await client.health()
            _ = try await client.openPositions(model: "cnt-none")  // nothing cached: a Postgres read
        }
        let after = parse(try await client.stats())
        #expect((value(before, "group_commit_transactions_total") ?? 0) >= 1)
        #expect(value(after, "group_commit_transactions_total") == value(before, "group_commit_transactions_total"))
        #expect(value(after, "group_commit_jobs_total") == value(before, "group_commit_jobs_total"))
        #expect(value(after, "cache_requests_total", ["family=\"positions\"", "result=\"miss\""]) == 3)
        await client.close()
        await s.stop()
    }

    func httpGet(port: UInt16, path: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw EngineStoreError(code: .unavailable, message: "connect") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
