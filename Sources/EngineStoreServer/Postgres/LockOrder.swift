/// One global order for every row lock a write takes, so that transactions (group commits of many
/// requests, other instances) never wait on each other in a cycle: a deadlock costs
/// `deadlock_timeout` and fails the whole batch. A transaction takes its locks in ascending key
/// order; `rounds` splits a batch into transactions that each keep that order.
enum LockOrder {
    /// A position slot (its row lock, its unique open index entry).
    static func position(_ model: String, _ symbol: String) -> String { "p|" + model + "|" + symbol }
    /// The per-model snapshot throttle lock, taken before the model's position rows.
    static func snapshot(_ model: String) -> String { "p|" + model + "|" }
    static func traderState(_ trader: String) -> String { "t|" + trader }
    static func analytics(_ model: String) -> String { "a|" + model }
    static func tradeEvent(_ id: String) -> String { "e|" + id }
    /// A market-data row (`table`: "l" latest price, "a" asset, "c" asset context) of a provider and
    /// symbol. The separator sorts below any character a provider may hold (no control characters),
    /// so these keys ascend as (provider, symbol) pairs do, the order the upserts run in.
    static func marketRow(_ table: String, _ provider: String, _ symbol: String) -> String {
        "m" + table + "|" + provider + "\u{1}" + symbol
    }

    /// Whether a job whose first key is `key` must run on that key's worker (`partition`). Market-data
    /// keys only order a transaction's locks: those writes run on any worker, as sending them all to
    /// one (one provider) cost 40 % of tick throughput (bench/ticks: 0.63 of COPY against 1.02). Two
    /// workers may then lock the same market rows, which is safe because each takes them ascending.
    static func pinsWorker(_ key: String) -> Bool { key.utf8.first != UInt8(ascii: "m") }

    /// Which of `count` workers writes under `key`: keys that share their kind and subject (the text
    /// up to a second `|`: a model's position slots and its snapshot lock) share
    /// a worker, so those rows are only ever locked by one worker of an instance.
    static func partition(_ key: String, of count: Int) -> UInt {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        var bars = 0
        for b in key.utf8 {
            if b == UInt8(ascii: "|") { bars += 1; if bars == 2 { break } }
            h = (h ^ UInt64(b)) &* 0x100_0000_01b3
        }
        return UInt(h % UInt64(max(1, count)))
    }

    /// Groups jobs into transactions, in order, such that inside each the lock keys only ascend.
    static func rounds(_ jobs: [any PostgresJob]) -> [[any PostgresJob]] {
        if jobs.count < 2 { return jobs.isEmpty ? [] : [jobs] }  // one job keeps its own order
        // Keys computed once per job (a snapshot's keys take a sort to build); the sort moves indices,
        // not (keys, job) pairs, which cost a retain and release of both per move.
        let keys = jobs.map(\.lockKeys)
        var rest = keys.indices.sorted { (keys[$0].first ?? "") < (keys[$1].first ?? "") }
        var rounds: [[any PostgresJob]] = []
        while !rest.isEmpty {
            var round: [Int] = []
            round.reserveCapacity(rest.count)
            var later: [Int] = []
            var highest = ""
            // The round's keys, built only when a job starts below `highest`: a key the transaction
            // already holds is taken again without a wait (two ticks requests on BTC), so only the
            // job's other keys must come above every key held.
            var held: Set<String>?
            // The keys of the jobs put off: a later job on one of them waits for the next round too,
            // so the jobs of a key keep their order.
            var deferred = Set<String>()
            for i in rest {
                guard let first = keys[i].first else { round.append(i); continue }
                let fits: Bool
                if !deferred.isEmpty && keys[i].contains(where: deferred.contains) {
                    fits = false
                } else if first < highest {
                    if held == nil { held = Set(round.flatMap { keys[$0] }) }
                    fits = keys[i].allSatisfy { $0 >= highest || held!.contains($0) }
                } else {
                    fits = true
                }
                guard fits else {
                    later.append(i)
                    deferred.formUnion(keys[i])
                    continue
                }
                round.append(i)
                held?.formUnion(keys[i])
                if let last = keys[i].last, last > highest { highest = last }
            }
            rounds.append(round.map { jobs[$0] })
            rest = later
        }
        return rounds
    }
}

