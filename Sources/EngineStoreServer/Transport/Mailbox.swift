import EventPoll
import Synchronization

/// Messages other threads send to the event loop.
enum LoopMessage: Sendable {
    /// A reply frame for a request; dropped unless that request is still pending with this token.
    case reply(connection: UInt64, requestID: UInt32, token: UInt64, frame: [UInt8])
    case shutdown
}

/// The event loop's inbox: a locked array plus an eventfd (`Wakeup`) that wakes `epoll_wait`.
/// The eventfd is written only when the inbox goes from empty to non-empty, so a burst of
/// replies costs one wake-up.
final class Mailbox: Sendable {
    let wakeup: Wakeup
    private let messages = Mutex<[LoopMessage]>([])

    init() throws {
        wakeup = try Wakeup()
    }

    func post(_ message: LoopMessage) {
        let wasEmpty = messages.withLock { m in
            let empty = m.isEmpty
            m.append(message)
            return empty
        }
        if wasEmpty { wakeup.signal() }
    }

    /// Clears the eventfd and takes everything posted so far.
    func drain(into out: inout [LoopMessage]) {
        wakeup.clear()
        messages.withLock { m in
            swap(&m, &out)
        }
    }
}

/// Where a job sends its answer: the request's connection, id and token, and the loop's mailbox.
struct ReplyTarget: Sendable {
    let mailbox: Mailbox
    let connection: UInt64
    let requestID: UInt32
    let token: UInt64
    let method: UInt16
    let deadlineNanos: UInt64
    let receivedNanos: UInt64
    let metrics: ServerMetrics

    /// Total latency, error codes and (for writes) db_writes_total.
    private func observe(_ error: ServiceError?, replayed: Bool = false) {
        if let error { metrics.error(error.code) }
        guard let m = metrics.method(method) else { return }
        m.total.recordNanoseconds(Int64(clamping: monotonicNanos() &- receivedNanos))
        (error != nil ? m.failed : (replayed ? m.replayed : m.ok))?.increment()
    }

    func send<M: WireMessage>(_ message: M, flags: FrameFlags = []) {
        observe(nil)
        let header = FrameHeader(kind: .response, method: method, requestID: requestID, flags: flags)
        mailbox.post(.reply(connection: connection, requestID: requestID, token: token,
                            frame: Frame.encode(header: header, message: message)))
    }

    func sendPayload(_ payload: [UInt8], flags: FrameFlags = [], observed: Bool = false) {
        if !observed { observe(nil) }
        let header = FrameHeader(kind: .response, method: method, requestID: requestID, flags: flags)
        var w = ByteWriter(capacity: 4 + FrameHeader.size + payload.count)
        Frame.encode(header: header, payload: payload, into: &w)
        mailbox.post(.reply(connection: connection, requestID: requestID, token: token, frame: w.bytes))
    }

    func fail(_ error: ServiceError) {
        observe(error)
        let header = FrameHeader(kind: .error, method: method, requestID: requestID)
        mailbox.post(.reply(connection: connection, requestID: requestID, token: token,
                            frame: Frame.encode(header: header, message: error.payload)))
    }

    func complete(_ result: Result<JobOutcome, ServiceError>) {
        switch result {
        case .success(let outcome):
            observe(nil, replayed: outcome.replayed)
            sendPayload(outcome.reply, flags: outcome.replayed ? .replayed : [], observed: true)
        case .failure(let error): fail(error)
        }
    }
}

import EngineStoreWire
