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
    // Market-data writes take no key: they lock latest-price, asset and context rows in SQL's sort
    // order, and run on any worker. Sending them all to one worker (one key) cost 40 % of tick
    // throughput (bench/ticks: 0.63 of COPY against 1.02).

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
            var round: [any PostgresJob] = []
            round.reserveCapacity(rest.count)
            var later: [Int] = []
            var highest = ""
            for i in rest {
                guard let first = keys[i].first else { round.append(jobs[i]); continue }
                if first >= highest {
                    round.append(jobs[i])
                    if let last = keys[i].last, last > highest { highest = last }
                } else {
                    later.append(i)
                }
            }
            rounds.append(round)
            rest = later
        }
        return rounds
    }
}

