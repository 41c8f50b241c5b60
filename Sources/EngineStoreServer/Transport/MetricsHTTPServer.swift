import CLinuxShims
import EventPoll
import Foundation
import Glibc
import Logging

/// A minimal HTTP endpoint for Prometheus to scrape (`GET /metrics`), on a loopback TCP address,
/// off by default. One thread, one request per connection, bounded reads: it serves nothing else.
final class MetricsHTTPServer: Sendable {
    private let fd: Int32
    private let metrics: ServerMetrics
    private let logger: Logger

    /// `address` is "127.0.0.1:PORT" (or "localhost:PORT"); only the IPv4 loopback is accepted.
    init(address: String, metrics: ServerMetrics, logger: Logger) throws {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw ConfigurationError("--metrics-listen needs HOST:PORT, got \(address)")
        }
        let host = String(address[..<colon])
        guard host == "127.0.0.1" || host == "localhost" else {
            throw ConfigurationError("--metrics-listen must be a loopback address (127.0.0.1:PORT), got \(address)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(fd, 16) == 0 else {
            let e = SystemError("bind/listen \(address)")
            close(fd)
            throw e
        }
        self.fd = fd
        self.metrics = metrics
        self.logger = logger
    }

    /// The bound port (useful with port 0).
    var port: UInt16 {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: addr.sin_port)
    }

    func start() {
        WorkerThread.detach(name: "engine-store-metrics-http") { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    if errno == EINTR { continue }
                    break  // closed at shutdown
                }
                serve(c)
                close(c)
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func serve(_ c: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
        guard n > 0 else { return }
        let request = String(decoding: buffer[0..<n], as: UTF8.self)
        let ok = request.hasPrefix("GET /metrics ") || request.hasPrefix("GET / ")
        let body = ok ? metrics.text : "not found\n"
        let head = "HTTP/1.1 \(ok ? "200 OK" : "404 Not Found")\r\nContent-Type: text/plain; version=0.0.4\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array((head + body).utf8)
        var sent = 0
        while sent < bytes.count {
            let w = bytes.withUnsafeBytes { send(c, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if w <= 0 { return }
            sent += w
        }
    }
}
