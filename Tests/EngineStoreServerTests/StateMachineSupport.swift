@testable import EngineStoreServer
import EngineStoreWire

typealias Machine = ConnectionStateMachine
typealias Action = ConnectionStateMachine.Action

let ms: UInt64 = 1_000_000

/// Limits small enough to reach in a test; timeouts in milliseconds.
func settings(maxInFlight: Int = 4, maxOutputBytes: Int = 1 << 20, maxFrameBytes: UInt32 = 1 << 16) -> Machine.Settings {
    Machine.Settings(maxFrameBytes: maxFrameBytes, maxInFlight: maxInFlight, maxOutputBytes: maxOutputBytes,
                     defaultDeadlineMs: 1000, handshakeTimeoutMs: 100, frameTimeoutMs: 200, idleTimeoutMs: 5000,
                     writeTimeoutMs: 300, instanceID: "test-instance", methods: [0b1110])
}

func requestFrame(_ method: Method, id: UInt32, deadlineMs: UInt32 = 0, payload: [UInt8] = [], version: UInt8 = protocolVersion,
                  kind: FrameKind = .request) -> [UInt8] {
    var w = ByteWriter()
    Frame.encode(header: FrameHeader(version: version, kind: kind, method: method.rawValue, requestID: id, deadlineMs: deadlineMs),
                 payload: payload, into: &w)
    return w.bytes
}

func helloFrame(id: UInt32 = 1, min: UInt32 = 1, max: UInt32 = 1) -> [UInt8] {
    Frame.encode(header: FrameHeader(kind: .request, method: Method.hello.rawValue, requestID: id),
                 message: HelloRequest(minVersion: min, maxVersion: max, clientName: "tests"))
}

func errorFrame(id: UInt32, method: Method?, _ code: ErrorCode, _ message: String) -> [UInt8] {
    Frame.encode(header: FrameHeader(kind: .error, method: method?.rawValue ?? 0, requestID: id),
                 message: ServiceError(code, message).payload)
}

func sendError(id: UInt32, method: Method?, _ code: ErrorCode, _ message: String) -> Action {
    .send(errorFrame(id: id, method: method, code, message), error: code)
}

func replyFrame(id: UInt32, method: Method, bytes: Int = 0) -> [UInt8] {
    var w = ByteWriter()
    Frame.encode(header: FrameHeader(kind: .response, method: method.rawValue, requestID: id),
                 payload: [UInt8](repeating: 7, count: bytes), into: &w)
    return w.bytes
}

let deadlineFrameMessage = "deadline exceeded; the write may or may not have been applied — retry with the same idempotency key"

extension ConnectionStateMachine {
    /// Bytes arrive and every frame the machine will take now is parsed (the loop's read path).
    mutating func feed(_ bytes: [UInt8], now: UInt64, estimates: ReplyEstimates = ReplyEstimates()) -> [Action] {
        received(bytes, now: now)
        return parseAll(now: now, estimates: estimates)
    }

    mutating func parseAll(now: UInt64, estimates: ReplyEstimates = ReplyEstimates()) -> [Action] {
        var all: [Action] = []
        while case let actions = nextFrame(now: now, estimates: estimates), !actions.isEmpty { all += actions }
        return all
    }

    /// A machine past a successful Hello, its reply written.
    static func handshaken(_ settings: Settings = EngineStoreServerTests.settings(), now: UInt64 = 0) -> ConnectionStateMachine {
        var m = ConnectionStateMachine(settings: settings, now: now)
        _ = m.feed(helloFrame(), now: now)
        m.writeAll(now: now)
        return m
    }

    /// The kernel takes everything queued.
    mutating func writeAll(now: UInt64) {
        didWrite(output.unsentBytes)
        _ = flushEnded(wrote: true, now: now)
    }

    /// The request the machine's only dispatch action carries.
    static func dispatched(_ actions: [Action]) -> Request? {
        guard actions.count == 1, case .dispatch(let r) = actions[0] else { return nil }
        return r
    }
}
