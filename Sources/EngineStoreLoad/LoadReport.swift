import Foundation
import Histogram

/// The outcome of a run: a table for people, one JSON object for machines, an HTML page with curves.
public struct LoadReport: Sendable {
    public struct Line: Sendable, Codable, Equatable {
        public var operation: String
        public var requests: UInt64
        public var errors: Int
        public var p50_us: UInt64
        public var p90_us: UInt64
        public var p99_us: UInt64
        public var p999_us: UInt64
        public var max_us: UInt64
        public var per_second: Double
    }

    public let configuration: LoadConfiguration
    public let run: String
    public let seconds: Double
    let recorder: Recorder
    let acknowledged: Acknowledged
    public var verification: Verification?
    /// Seconds `--verify` took after the load ended.
    public var verifySeconds: Double = 0
    /// Successful requests per second of the run (index 0 = the first second, warm-up included).
    public var acksPerSecond: [Int] { recorder.timeline }

    init(configuration: LoadConfiguration, run: String, seconds: Double, recorder: Recorder, acknowledged: Acknowledged) {
        self.acknowledged = acknowledged
        self.configuration = configuration
        self.run = run
        self.seconds = seconds
        self.recorder = recorder
    }

    public var lines: [Line] {
        let ops = Set(recorder.succeeded).union(recorder.errors.keys).sorted()
        return ops.map { op in
            let h = recorder.histogram(op)
            let errors = recorder.errors[op]?.values.reduce(0, +) ?? 0
            return Line(operation: op.rawValue, requests: h?.totalCount ?? 0, errors: errors,
                        p50_us: h?.valueAtPercentile(50) ?? 0, p90_us: h?.valueAtPercentile(90) ?? 0,
                        p99_us: h?.valueAtPercentile(99) ?? 0, p999_us: h?.valueAtPercentile(99.9) ?? 0,
                        max_us: h?.max ?? 0, per_second: Double(h?.totalCount ?? 0) / max(seconds, 0.001))
        }
    }

    public var totalRequests: UInt64 { lines.reduce(0) { $0 + $1.requests } }
    public var totalErrors: Int { lines.reduce(0) { $0 + $1.errors } }
    public var throughput: Double { Double(totalRequests) / max(seconds, 0.001) }
    public var errorsByCode: [String: Int] {
        var out: [String: Int] = [:]
        for codes in recorder.errors.values { for (c, n) in codes { out[c, default: 0] += n } }
        return out
    }

    public var table: String {
        var out = String(format: "run %@: %.1f s, %d connections × %d in flight, %@ loop, mix %@\n", run, seconds,
                         configuration.connections, configuration.inFlight, configuration.rate == nil ? "closed" : "open", configuration.mix.description)
        out += String(format: "throughput: %.0f requests/s (%llu ok, %d errors)\n", throughput, totalRequests, totalErrors)
        if !errorsByCode.isEmpty {
            out += "errors: " + errorsByCode.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        out += "rpc              requests     req/s      p50      p90      p99    p99.9      max   (µs)\n"
        for l in lines {
            out += l.operation.padding(toLength: 15, withPad: " ", startingAt: 0)
            out += String(format: " %10llu %9.0f %8llu %8llu %8llu %8llu %8llu\n", l.requests, l.per_second, l.p50_us, l.p90_us,
                          l.p99_us, l.p999_us, l.max_us)
        }
        if let v = verification {
            out += "verify: acknowledged=\(v.acknowledged) found=\(v.found) missing=\(v.missing) duplicates=\(v.duplicates) unacknowledged=\(v.unacknowledged) reexecuted=\(v.reexecuted) duplicate_sends=\(v.duplicateSends) reply_mismatches=\(v.replyMismatches) → \(v.ok ? "OK" : "FAILED")\n"
            for (kind, k) in v.byKind.sorted(by: { $0.key < $1.key }) {
                out += "  \(kind): acknowledged=\(k.acknowledged) missing=\(k.missing) unacknowledged=\(k.unacknowledged)\n"
            }
        }
        return out
    }

    struct JSONShape: Codable {
        var run: String
        var seconds: Double
        var connections: Int
        var in_flight: Int
        var mix: String
        var mode: String
        var requests: UInt64
        var errors: Int
        var throughput: Double
        var errors_by_code: [String: Int]
        var rpcs: [Line]
        var verify: Verification?
        var verify_seconds: Double?
        var acks_per_second: [Int]
    }

    public var json: String {
        let shape = JSONShape(run: run, seconds: seconds, connections: configuration.connections, in_flight: configuration.inFlight,
                              mix: configuration.mix.description, mode: configuration.rate == nil ? "closed" : "open",
                              requests: totalRequests, errors: totalErrors, throughput: throughput, errors_by_code: errorsByCode,
                              rpcs: lines, verify: verification, verify_seconds: verification == nil ? nil : verifySeconds,
                              acks_per_second: acksPerSecond)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(shape)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// A self-contained HTML page: the latency-percentile curve of each RPC as inline SVG (log-scaled
    /// "1/(1-p)" x axis, as HdrHistogram plots do), no scripts, no network.
    public var html: String {
        let width = 760.0, height = 360.0, left = 60.0, bottom = 40.0
        let percentiles: [Double] = stride(from: 0.0, through: 6.0, by: 0.05).map { 100 * (1 - pow(10, -$0)) }
        let curves: [(String, [(Double, UInt64)])] = recorder.succeeded.compactMap { op in
            guard let h = recorder.histogram(op) else { return nil }
            return (op.rawValue, percentiles.map { ($0, h.valueAtPercentile(min($0, 100))) })
        }
        let maxValue = Double(curves.flatMap { $0.1.map(\.1) }.max() ?? 1)
        func x(_ p: Double) -> Double { left + (width - left - 20) * min(6, -log10(max(1e-6, 1 - p / 100))) / 6 }
        func y(_ v: UInt64) -> Double { height - bottom - (height - bottom - 20) * log10(Double(max(v, 1))) / log10(max(maxValue, 10)) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
        var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(width))' height='\(Int(height))' font-family='sans-serif' font-size='11'>"
        svg += "<rect width='100%' height='100%' fill='white'/>"
        for (label, p) in [("50%", 50.0), ("90%", 90), ("99%", 99), ("99.9%", 99.9), ("99.99%", 99.99), ("99.999%", 99.999)] {
            svg += "<line x1='\(x(p))' y1='20' x2='\(x(p))' y2='\(height - bottom)' stroke='#ddd'/>"
            svg += "<text x='\(x(p) - 12)' y='\(height - bottom + 15)'>\(label)</text>"
        }
        var v: Double = 1
        while v <= maxValue * 10 {
            let yy = y(UInt64(v))
            if yy >= 20 {
                svg += "<line x1='\(left)' y1='\(yy)' x2='\(width - 20)' y2='\(yy)' stroke='#eee'/>"
                svg += "<text x='5' y='\(yy + 4)'>\(v >= 1000 ? "\(Int(v / 1000)) ms" : "\(Int(v)) µs")</text>"
            }
            v *= 10
        }
        for (i, curve) in curves.enumerated() {
            let points = curve.1.map { "\(x($0.0)),\(y($0.1))" }.joined(separator: " ")
            let color = colors[i % colors.count]
            svg += "<polyline fill='none' stroke='\(color)' stroke-width='2' points='\(points)'/>"
            svg += "<text x='\(left + 10)' y='\(34 + 14 * Double(i))' fill='\(color)'>\(curve.0)</text>"
        }
        svg += "<text x='\(width / 2 - 40)' y='\(height - 5)'>percentile</text></svg>"
        let rows = lines.map { l in
            "<tr><td>\(l.operation)</td><td>\(l.requests)</td><td>\(l.errors)</td><td>\(Int(l.per_second))</td><td>\(l.p50_us)</td><td>\(l.p90_us)</td><td>\(l.p99_us)</td><td>\(l.p999_us)</td><td>\(l.max_us)</td></tr>"
        }.joined()
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>engine-store-load \(run)</title>
            <style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}th{border-bottom:1px solid #999}</style></head>
            <body><h1>engine-store-load</h1><p>run \(run): \(String(format: "%.1f", seconds)) s, \(configuration.connections) connections ×
            \(configuration.inFlight) in flight, mix \(configuration.mix.description); \(Int(throughput)) requests/s, \(totalErrors) errors</p>
            <table><tr><th>rpc</th><th>requests</th><th>errors</th><th>req/s</th><th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th><th>max µs</th></tr>\(rows)</table>
            <h2>Latency by percentile</h2>\(svg)</body></html>
            """
    }
}
