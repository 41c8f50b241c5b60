import ArgumentParser
import EngineSim
import EngineStoreClient
import Foundation

/// A small nof0-style engine driving EngineStore: N traders on random-walk markets.
@main
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-sim",
        abstract: "Simulated trading engine: traders record decisions, open/close positions, snapshot, update analytics — all through EngineStore.")

    @Option(help: "Unix socket path (env ENGINE_STORE_SOCKET).") var socket: String?
    @Option(help: "Number of traders.") var traders = 3
    @Option(help: "Comma-separated symbols.") var symbols = "BTC,ETH,SOL,DOGE"
    @Option(help: "Seconds between decision rounds (fractional allowed).") var cycle: Double = 1
    @Option(help: "Seconds to run.") var duration: Double = 10
    @Option(help: "Seed for deterministic runs.") var seed: UInt64 = 1
    @Option(help: "Trader id prefix (ids are PREFIX-0, PREFIX-1, …; the same ids restore after a restart).") var prefix = "sim-trader"

    func run() async throws {
        guard let path = socket ?? ProcessInfo.processInfo.environment["ENGINE_STORE_SOCKET"] else {
            throw ValidationError("set --socket or ENGINE_STORE_SOCKET")
        }
        var config = Manager.Configuration()
        config.traders = traders
        config.symbols = symbols.split(separator: ",").map { String($0).uppercased() }
        config.seed = seed
        config.traderPrefix = prefix
        config.startMs = Int64(Date().timeIntervalSince1970 * 1000)
        config.stepMs = Int64(max(cycle, 0.001) * 1000)
        let client = EngineStoreClient(socketPath: path)
        let manager = Manager(configuration: config, store: client)
        try await manager.restore()
        let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
        while ContinuousClock.now < end {
            let next = ContinuousClock.now + .milliseconds(Int(cycle * 1000))
            try await manager.round()
            if next > ContinuousClock.now { try await Task.sleep(until: next) }
        }
        let r = await manager.report()
        await client.close()
        print("engine-sim: traders=\(traders) cycles=\(r.cycles) opens=\(r.opens) closes=\(r.closes) (partial \(r.partialCloses)) "
              + "ticks=\(r.ticks) snapshots_stored=\(r.snapshotsStored) restored_positions=\(r.restoredPositions)")
        print("expected in the store:")
        for (trader, open) in r.openPositions.sorted(by: { $0.key < $1.key }) {
            print("  \(trader): open positions [\(open.joined(separator: ", "))] (= fields of nof0:positions:\(trader))")
        }
        print("  trades rows added: \(r.closes); price_ticks rows added: \(r.ticks); leaderboard members include every trader")
    }
}
