import ArgumentParser
import EngineStoreLoad
import Foundation
import Glibc

/// Socket-level load tester for EngineStore.
@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-store-load",
        abstract: "Drive an EngineStore server over its socket with a mix of RPCs; report throughput and latency percentiles.",
        discussion: "Exit status: 0 ok, 1 when --verify finds missing, duplicated or re-executed writes, 2 on errors starting the run.")

    @Option(help: "Unix socket path, or several separated by commas to spread connections over instances (env ENGINE_STORE_SOCKET).")
    var socket: String?
    @Option(help: "Client connections.") var connections = 1
    @Option(help: "Concurrent requests per connection.") var inFlight = 16
    @Option(help: "Weighted RPC mix, e.g. save-position=5,close-position=2,snapshot=1,trade-event=1,ticks=1,health=0")
    var mix = Mix.default.description
    @Option(help: "Seconds to run (default 10 unless --count).") var duration: Double?
    @Option(help: "Requests to send, instead of --duration.") var count: Int?
    @Option(help: "Open loop at this many requests/s (latency from intended start); default closed loop.") var rate: Double?
    @Option(help: "Models to spread writes over.") var models = 4
    @Option(help: "Symbols per model.") var symbols = 8
    @Option(help: "Seconds of load before measuring.") var warmup: Double = 0
    @Option(help: "Ticks per IngestPriceTicks batch.") var ticksPerBatch = 100
    @Option(help: "Per-call deadline in seconds (retries happen inside it).") var timeout: Double = 10
    @Option(help: "Seed for deterministic choices.") var seed: UInt64?
    @Option(help: "Fraction (0-1) of writes sent twice at once on two connections with one idempotency key; --verify then requires equal answers and a single effect.")
    var duplicateRate: Double = 0
    @Flag(help: "Print one JSON object instead of the table.") var json = false
    @Option(help: "Write a self-contained HTML report with latency curves.") var report: String?
    @Flag(help: "Check afterwards that Postgres holds every acknowledged write exactly once (needs --postgres).") var verify = false
    @Option(help: "Postgres connection string for --verify (env ENGINE_STORE_POSTGRES_URL).") var postgres: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let path = socket ?? env["ENGINE_STORE_SOCKET"] else { throw ValidationError("set --socket or ENGINE_STORE_SOCKET") }
        let paths = path.split(separator: ",").map(String.init).filter { !$0.isEmpty }
        guard !paths.isEmpty else { throw ValidationError("--socket is empty") }
        var c = LoadConfiguration(socketPaths: paths)
        c.connections = connections
        c.inFlight = inFlight
        do { c.mix = try Mix(parsing: mix) } catch { throw ValidationError("\(error)") }
        c.count = count
        c.duration = count == nil ? (duration ?? 10) : duration
        c.rate = rate
        c.models = models
        c.symbols = symbols
        c.warmup = warmup
        c.ticksPerBatch = ticksPerBatch
        c.timeoutSeconds = timeout
        c.seed = seed
        guard (0...1).contains(duplicateRate) else { throw ValidationError("--duplicate-rate must be between 0 and 1") }
        c.duplicateRate = duplicateRate
        c.progress = isatty(STDERR_FILENO) == 1 && !json
        if verify {
            guard let url = postgres ?? env["ENGINE_STORE_POSTGRES_URL"] else { throw ValidationError("--verify needs --postgres") }
            c.verifyPostgresURL = url
        }
        let result: LoadReport
        do {
            result = try await LoadRunner.run(c)
        } catch {
            FileHandle.standardError.write(Data("engine-store-load: \(error)\n".utf8))
            throw ExitCode(2)
        }
        print(json ? result.json : result.table, terminator: json ? "\n" : "")
        if let report { try result.html.write(toFile: report, atomically: true, encoding: .utf8) }
        if let v = result.verification, !v.ok { throw ExitCode(1) }
    }
}
