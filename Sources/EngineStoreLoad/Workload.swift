import EngineStoreClient
import Foundation
import Synchronization

/// One position this worker opened and believes still open.
struct OpenPosition {
    var model: String
    var symbol: String
    var quantity: Double
    /// `model|SYMBOL|entry_time_ms`: the lifecycle, which every trades row of this position carries too.
    var lifecycle: String
    /// False once a close of it ended without a definite answer (it may have closed in Postgres).
    var certain = true
}

/// Milliseconds shared by a run's workers, from a day ago, one step per call: strictly increasing
/// across all of them.
final class LoadClock: Sendable {
    private let ms: Atomic<Int64>

    init(startMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000) - 86_400_000) {
        ms = Atomic(startMs)
    }

    func next() -> Int64 { ms.add(1, ordering: .relaxed).newValue }
}

/// One worker's view of the world: the positions it opened (its own symbols, so workers never
/// contend), the run's clock for snapshots and closes, and its counters for unique ids.
struct Workload {
    let run: String
    let worker: Int
    let models: [String]
    let symbolsPerModel: Int
    let ticksPerBatch: Int
    let duplicateRate: Double
    var rng: SplitMix
    var open: [OpenPosition] = []
    /// Symbols that may have an open row in Postgres (opened, or an open was tried, and no full
    /// close acknowledged): never opened again in this run, so every open this worker sends is for a
    /// fresh lifecycle and must answer `opened = true`.
    var maybeOpen: Set<String> = []
    var serial = 0
    /// The entry time of every shared-key position (update-position): the same for all workers.
    let sharedEntryTimeMs: Int64
    /// Exit, tick, snapshot and event times: one clock for every worker of the run, so they stay
    /// unique and each trader's snapshots and trades arrive about in time order, as one engine per
    /// trader sends them (per-worker clocks up to an hour apart sent most of them behind the
    /// trader's newest: the rare case in production, not the usual one).
    let clock: LoadClock
    /// The 16 symbols this worker ticks, built once: an engine has its symbols already, and building
    /// them per tick was most of the load tester's CPU per ticks request.
    let tickSymbols: [String]

    init(run: String, worker: Int, configuration: LoadConfiguration, seed: UInt64, clock: LoadClock) {
        self.run = run
        self.worker = worker
        self.models = (0..<max(1, configuration.models)).map { "load-\(run)-m\($0)" }
        self.symbolsPerModel = max(1, configuration.symbols)
        self.ticksPerBatch = max(1, configuration.ticksPerBatch)
        self.duplicateRate = min(1, max(0, configuration.duplicateRate))
        // Each worker its own stream: seeded from a scrambled value, not `seed + worker × γ`, which
        // made worker w draw worker 0's numbers w steps later (every worker hit the same keys).
        var seeder = SplitMix(seed: seed ^ (UInt64(worker) &* 0xD6E8_FEB8_6659_FD93))
        self.rng = SplitMix(seed: seeder.next())
        self.clock = clock
        self.tickSymbols = (0..<16).map { "T\(run)-W\(worker)-\($0)" }
        self.sharedEntryTimeMs = Int64(Date().timeIntervalSince1970 / 86_400) * 86_400_000 - 86_400_000
    }

    func next() -> Int64 { clock.next() }

    /// A symbol with no lifecycle of this run that may still be open: one of the key space when the
    /// next few are free, else a fresh one. A bounded number of tries: a scan of the whole key space
    /// once it fills up cost the loader milliseconds per open, which showed as server latency.
    mutating func symbol() -> String {
        let cycle = symbolsPerModel * 1000
        for _ in 0..<4 {
            serial += 1
            let s = "W\(worker)-\(serial % cycle)"
            if !maybeOpen.contains(s) { return s }
        }
        serial += 1
        return "W\(worker)-X\(serial)"
    }

    /// A fresh idempotency key; the verifier finds this run's keys by their prefix.
    mutating func key() -> String {
        serial += 1
        return "load-\(run)-w\(worker)-k\(serial)"
    }

    /// Sends one write. With `--duplicate-rate`, a fraction goes out twice at once, the same request
    /// (so the same idempotency key) on two connections: both answers must be equal (a definite
    /// error beside a success, or two different ones, counts as a mismatch). A definite error's key is
    /// remembered: Postgres must hold no recorded success for it.
    mutating func send<R: Sendable & Equatable>(
        _ key: String, _ store: EngineStoreClient, _ twin: EngineStoreClient?, _ ack: inout Acknowledged,
        _ call: @escaping @Sendable (EngineStoreClient) async throws -> R
    ) async throws -> R {
        do {
            guard let twin, duplicateRate > 0, Double.random(in: 0..<1, using: &rng) < duplicateRate else {
                return try await call(store)
            }
            ack.duplicateSends += 1
            async let first = attempt { try await call(store) }
            async let second = attempt { try await call(twin) }
            let (a, b) = await (first, second)
            switch (a, b) {
            case let (.success(x), .success(y)):
                if x != y { ack.replyMismatches += 1 }
                return x
            case let (.success(x), .failure(e)), let (.failure(e), .success(x)):
                if isDefinite(e) { ack.replyMismatches += 1 }
                return x
            case let (.failure(e), .failure(f)):
                if isDefinite(e), isDefinite(f), (e as? EngineStoreError)?.code != (f as? EngineStoreError)?.code {
                    ack.replyMismatches += 1
                }
                throw isDefinite(e) ? e : f
            }
        } catch {
            if isDefinite(error) { ack.definiteErrorKeys.append(key) }
            throw error
        }
    }

    /// Runs one operation; returns what the server acknowledged (for --verify).
    mutating func perform(_ op: Operation, on store: EngineStoreClient, twin: EngineStoreClient? = nil,
                          ack: inout Acknowledged) async throws {
        switch op {
        case .health:
            _ = try await store.health()
        case .noop:
            _ = try await store.ping()
        case .openPosition:
            try await openOne(on: store, twin: twin, ack: &ack)
        case .updatePosition:
            try await updateShared(on: store, twin: twin, ack: &ack)
        case .savePosition:
            // Mostly opens; a third of the time a mark-to-market update of an open position.
            if !open.isEmpty && Int.random(in: 0..<3, using: &rng) == 0 {
                let p = open[Int.random(in: 0..<open.count, using: &rng)]
                let request = SavePositionRequest(idempotencyKey: key(), modelID: p.model, symbol: p.symbol,
                                                  currentPrice: 100 + Double.random(in: -5...5, using: &rng))
                _ = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.savePosition(request) }
            } else {
                try await openOne(on: store, twin: twin, ack: &ack)
            }
        case .closePosition:
            if open.isEmpty { try await openOne(on: store, twin: twin, ack: &ack) }
            guard !open.isEmpty else { return }
            let i = Int.random(in: 0..<open.count, using: &rng)
            let p = open[i]
            let partial = p.quantity > 1 && Bool.random(using: &rng)
            let size = partial ? p.quantity / 2 : p.quantity
            let request = ClosePositionRequest(
                idempotencyKey: key(), modelID: p.model, symbol: p.symbol, exitPrice: 100 + Double.random(in: -10...10, using: &rng),
                exitSize: partial ? size : nil, exitTimeMs: next(), exitCommission: 0.05)
            do {
                let r = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.closePosition(request) }
                ack.closed(p.lifecycle, tradeRowID: r.tradeRowID)
                if r.fullyClosed {
                    open.remove(at: i)
                    maybeOpen.remove(p.symbol)
                } else {
                    open[i].quantity = r.remainingSize
                }
            } catch {
                if (error as? EngineStoreError)?.code == .notFound {
                    // Nothing open: right only if an earlier close of it may have gone through.
                    if p.certain { ack.reexecuted += 1 }
                    open.remove(at: i)
                } else if !isDefinite(error) {
                    ack.closes[p.lifecycle, default: CloseTally()].indefinite += 1
                    open[i].certain = false
                }
                throw error
            }
        case .snapshot:
            let model = models[Int.random(in: 0..<models.count, using: &rng)]
            let marks = open.filter { $0.model == model }.prefix(4).map { PositionMark(symbol: $0.symbol, currentPrice: 101) }
            let ts = next()
            let request = SaveSnapshotRequest(idempotencyKey: key(), snapshots: [
                AccountSnapshot(modelID: model, timestampMs: ts, dollarEquity: 10_000 + Double.random(in: -100...100, using: &rng),
                                marks: Array(marks)),
            ])
            let r = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.saveSnapshots(request) }
            for result in r.results where result.stored && result.modelID == model { ack.stored(snapshotOf: model, at: ts) }
        case .tradeEvent:
            serial += 1
            let id = "load-\(run)-w\(worker)-e\(serial)"
            let request = PublishTradeEventRequest(
                idempotencyKey: key(), tradeID: id, modelID: models[Int.random(in: 0..<models.count, using: &rng)], symbol: "BTC",
                kind: "fill", side: .long, price: 97_000, size: 0.01, fee: 0.01, timestampMs: next())
            let r = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.publishTradeEvent(request) }
            // Every trade id is new: `duplicate` means the event was stored by an earlier execution.
            if r.duplicate { ack.reexecuted += 1 } else { ack.published(id) }
        case .ticks:
            var batch: [PriceTick] = []
            batch.reserveCapacity(ticksPerBatch)
            for i in 0..<ticksPerBatch {
                // Each worker ticks its own symbols with its own strictly increasing clock, so a
                // repeated (symbol, ts) in Postgres can only be a duplicated write (--verify).
                batch.append(PriceTick(provider: "load", symbol: tickSymbols[i % 16], price: 100 + Double(i % 100) / 100,
                                       timestampMs: next(), volume: 1))
            }
            let request = IngestPriceTicksRequest(idempotencyKey: key(), ticks: batch)
            let r = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.ingestPriceTicks(request) }
            ack.ticks += Int(r.stored)
        }
    }

    /// Saves one position of the shared key space `U0…U<symbols-1>` of a random model: every field an
    /// open needs, so whichever worker comes first opens it and the rest update it.
    mutating func updateShared(on store: EngineStoreClient, twin: EngineStoreClient?, ack: inout Acknowledged) async throws {
        let model = models[Int.random(in: 0..<models.count, using: &rng)]
        let symbol = "U\(Int.random(in: 0..<symbolsPerModel, using: &rng))"
        let request = SavePositionRequest(
            idempotencyKey: key(), modelID: model, symbol: symbol, exchangeProvider: "load", side: .long,
            quantity: Double(Int.random(in: 1...4, using: &rng)), entryPrice: 100, entryTimeMs: sharedEntryTimeMs, leverage: 5,
            confidence: 0.5, currentPrice: 100 + Double.random(in: -5...5, using: &rng), commission: 0.05)
        let r = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.savePosition(request) }
        if r.opened { ack.opened(r.positionID) }
    }

    mutating func openOne(on store: EngineStoreClient, twin: EngineStoreClient?, ack: inout Acknowledged) async throws {
        let model = models[Int.random(in: 0..<models.count, using: &rng)]
        let symbol = symbol()
        let quantity = Double(Int.random(in: 1...4, using: &rng))
        let entry = next()
        let request = SavePositionRequest(
            idempotencyKey: key(), modelID: model, symbol: symbol, exchangeProvider: "load",
            side: Bool.random(using: &rng) ? .long : .short, quantity: quantity, entryPrice: 100, entryTimeMs: entry, leverage: 5,
            confidence: 0.5, commission: 0.05)
        maybeOpen.insert(symbol)
        let r = try await send(request.idempotencyKey, store, twin, &ack) { try await $0.savePosition(request) }
        if r.opened {
            ack.opened(r.positionID)
            open.append(OpenPosition(model: model, symbol: symbol, quantity: quantity, lifecycle: "\(model)|\(symbol)|\(entry)"))
        } else {
            // Nothing of this lifecycle can be open yet: an update means the open ran before.
            ack.reexecuted += 1
        }
    }
}

/// A definite answer: the request was refused, so it has no effect (unlike a lost connection or a
/// passed deadline, after which it may or may not have committed).
func isDefinite(_ error: any Error) -> Bool {
    guard let e = error as? EngineStoreError else { return false }
    switch e.code {
    case .notFound, .conflict, .invalidArgument, .failedPrecondition: return true
    default: return false
    }
}

func attempt<R: Sendable>(_ body: @Sendable () async throws -> R) async -> Result<R, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

/// A small, fast, seedable generator (deterministic runs with --seed).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
