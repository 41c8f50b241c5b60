import Foundation

/// A FIFO that dedicated worker threads block on. Producers never block.
///
/// Safety of `@unchecked Sendable`: every access to `items` and `closed` happens while holding
/// `condition`'s lock, and `condition` (NSCondition) is itself thread-safe.
final class BlockingQueue<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var closed = false

    func push(_ item: Element) {
        condition.lock()
        items.append(item)
        condition.unlock()
        condition.signal()
    }

    /// `signal: false` leaves the wake-up to a later `signal()`: the consumer sees the items when it
    /// next looks, and the caller keeps the wake-up off its own critical path.
    func push(contentsOf new: [Element], signal: Bool = true) {
        guard !new.isEmpty else { return }
        condition.lock()
        items.append(contentsOf: new)
        condition.unlock()
        if signal { condition.signal() }
    }

    func signal() {
        condition.signal()
    }

    /// Blocks until at least one item is there (or the queue is closed and empty: returns []),
    /// then takes up to `max` items.
    func popBatch(max: Int) -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        while items.count == head && !closed { condition.wait() }
        return takeLocked(max: max)
    }

    /// Like `popBatch(max:)` but gives up after `timeoutSeconds` (returns [] then, or when closed and empty).
    func popBatch(max: Int, timeoutSeconds: Double) -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while items.count == head && !closed {
            if !condition.wait(until: deadline) { break }
        }
        return takeLocked(max: max)
    }

    /// Takes up to `max` items; the lock is held. Consumed slots are dropped once half the array.
    private func takeLocked(max: Int) -> [Element] {
        let available = items.count - head
        guard available > 0 else { return [] }
        let n = Swift.min(max, available)
        let batch = Array(items[head..<(head + n)])
        head += n
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return batch
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count - head
    }

    var isClosedAndEmpty: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed && items.count == head
    }

    /// Wakes every waiter; after the remaining items are taken, `popBatch` returns [].
    func close() {
        condition.lock()
        closed = true
        condition.unlock()
        condition.broadcast()
    }
}
