@testable import EngineStoreServer
import EngineStoreWire
import Testing

@Suite struct MachineHandshakeTests {
    @Test func requestBeforeHelloIsAnsweredThenClosed() {
        var m = Machine(settings: settings(), now: 0)
        let actions = m.feed(requestFrame(.getTraderState, id: 7) + helloFrame(id: 8), now: 1)
        #expect(actions == [
            .protocolViolation(.failedPrecondition, "the first request must be Hello"),
            sendError(id: 7, method: .getTraderState, .failedPrecondition, "the first request must be Hello"),
        ])
        // Nothing after the violation is parsed or read; the connection closes once the error is out.
        #expect(m.closeAfterFlush && !m.wantsRead && !m.handshaken)
        #expect(m.parseAll(now: 2) == [])
        m.didWrite(10)
        #expect(m.flushEnded(wrote: true, now: 3) == [])
        m.didWrite(m.output.unsentBytes)
        #expect(m.flushEnded(wrote: true, now: 4) == [.close(.protocolViolation)])
    }

    @Test func helloNegotiatesVersionOne() {
        var m = Machine(settings: settings(maxInFlight: 3), now: 0)
        let expected = HelloResponse(version: 1, serverName: "engine-store", serverVersion: serverVersion, maxFrameBytes: 1 << 16,
                                     maxInFlight: 3, instanceID: "test-instance", methods: [0b1110])
        #expect(m.feed(helloFrame(id: 5, min: 1, max: 4), now: 1) == [
            .send(Frame.encode(header: FrameHeader(kind: .response, method: Method.hello.rawValue, requestID: 5), message: expected),
                  error: nil),
        ])
        #expect(m.handshaken && !m.closeAfterFlush)
        // A second Hello is refused; the connection stays usable.
        #expect(m.feed(helloFrame(id: 6), now: 2) == [
            sendError(id: 6, method: .hello, .failedPrecondition, "Hello was already accepted on this connection"),
        ])
        #expect(!m.closeAfterFlush)
    }

    @Test func helloWithoutCommonVersionCloses() {
        var m = Machine(settings: settings(), now: 0)
        let message = "no common version: client 2...3, server 1...1"
        #expect(m.feed(helloFrame(id: 1, min: 2, max: 3), now: 1) == [
            .protocolViolation(.unsupportedVersion, message), sendError(id: 1, method: .hello, .unsupportedVersion, message),
        ])
        #expect(m.closeAfterFlush && !m.handshaken)
    }

    @Test func frameVersionMismatchClosesOnlyBeforeHandshake() {
        let message = "frame version 2 not supported; this server speaks 1"
        var fresh = Machine(settings: settings(), now: 0)
        #expect(fresh.feed(requestFrame(.ping, id: 3, version: 2), now: 1) == [
            .protocolViolation(.unsupportedVersion, message), sendError(id: 3, method: .ping, .unsupportedVersion, message),
        ])
        var m = Machine.handshaken()
        #expect(m.feed(requestFrame(.ping, id: 3, version: 2), now: 1) == [sendError(id: 3, method: .ping, .unsupportedVersion, message)])
        #expect(!m.closeAfterFlush)
    }

    @Test func handshakeTimeout() {
        var m = Machine(settings: settings(), now: 0)
        #expect(m.checkTimeouts(now: 100 * ms) == [])
        #expect(m.checkTimeouts(now: 101 * ms) == [.close(.handshakeTimeout)])
        #expect(Machine.handshaken().checkTimeoutsCopy(now: 101 * ms) == [])
    }
}

@Suite struct MachineRequestTests {
    @Test func requestsAreDispatchedWithTokensAndDeadlines() {
        var m = Machine.handshaken()
        let actions = m.feed(requestFrame(.getTraderState, id: 10, payload: [1, 2]) + requestFrame(.savePosition, id: 11, deadlineMs: 50),
                             now: 5 * ms)
        #expect(actions == [
            .dispatch(.init(requestID: 10, method: Method.getTraderState.rawValue, payload: [1, 2], token: 1,
                            deadlineNanos: 1005 * ms, receivedNanos: 5 * ms)),
            .dispatch(.init(requestID: 11, method: Method.savePosition.rawValue, payload: [], token: 2,
                            deadlineNanos: 55 * ms, receivedNanos: 5 * ms)),
        ])
        #expect(m.inFlight == 2 && m.reservedOutput == 2048)
        let reply = replyFrame(id: 10, method: .getTraderState, bytes: 20)
        var estimates = ReplyEstimates()
        #expect(m.replyArrived(requestID: 10, token: 1, frame: reply, now: 6 * ms, estimates: &estimates) == [.send(reply, error: nil)])
        #expect(estimates.reserve(for: Method.getTraderState.rawValue) == reply.count)
        #expect(m.inFlight == 1 && m.reservedOutput == 1024)
    }

    @Test func pingIsAnsweredInline() {
        var m = Machine.handshaken()
        let ping = PingMessage(payload: [9, 9])
        #expect(m.feed(Frame.encode(header: FrameHeader(kind: .request, method: Method.ping.rawValue, requestID: 4), message: ping), now: 1) == [
            .send(Frame.encode(header: FrameHeader(kind: .response, method: Method.ping.rawValue, requestID: 4), message: ping), error: nil),
        ])
        #expect(m.inFlight == 0)
    }

    @Test func duplicateOrZeroRequestIDIsAViolation() {
        var m = Machine.handshaken()
        _ = m.feed(requestFrame(.getTraderState, id: 10), now: 1)
        let message = "request id 10 is reserved or already in flight"
        #expect(m.feed(requestFrame(.getTraderState, id: 10), now: 2) == [
            .protocolViolation(.protocolError, message), sendError(id: 0, method: nil, .protocolError, message),
        ])
        var z = Machine.handshaken()
        #expect(z.feed(requestFrame(.getTraderState, id: 0), now: 2).first == .protocolViolation(.protocolError, "request id 0 is reserved or already in flight"))
    }

    @Test func onlyRequestFramesAreAccepted() {
        var m = Machine.handshaken()
        let message = "clients may only send request frames (kind 1)"
        #expect(m.feed(requestFrame(.getTraderState, id: 3, kind: .response), now: 1) == [
            .protocolViolation(.protocolError, message), sendError(id: 0, method: nil, .protocolError, message),
        ])
    }

    @Test func refusedDispatchFreesTheSlot() {
        var m = Machine.handshaken(settings(maxInFlight: 1))
        _ = m.feed(requestFrame(.savePosition, id: 3), now: 1)
        #expect(!m.wantsRead)
        #expect(m.dispatchRejected(requestID: 3, .invalid("symbol", "empty")) == [
            .send(Frame.encode(header: FrameHeader(kind: .error, method: Method.savePosition.rawValue, requestID: 3),
                               message: ServiceError.invalid("symbol", "empty").payload), error: .invalidArgument),
        ])
        #expect(m.inFlight == 0 && m.reservedOutput == 0)
    }

    @Test func inFlightLimitStopsParsingUntilAReply() {
        var m = Machine.handshaken(settings(maxInFlight: 2))
        let actions = m.feed(requestFrame(.getTraderState, id: 1) + requestFrame(.getTraderState, id: 2) + requestFrame(.getTraderState, id: 3),
                             now: 1)
        #expect(actions.count == 2 && actions.allSatisfy { if case .dispatch = $0 { true } else { false } })
        #expect(m.inFlight == 2 && !m.wantsRead && !m.input.unparsed.isEmpty)
        #expect(m.parseAll(now: 2) == [])
        var estimates = ReplyEstimates()
        let reply = replyFrame(id: 1, method: .getTraderState)
        #expect(m.replyArrived(requestID: 1, token: 1, frame: reply, now: 3, estimates: &estimates) == [.send(reply, error: nil)])
        #expect(Machine.dispatched(m.parseAll(now: 4))?.requestID == 3)
        #expect(m.inFlight == 2 && m.input.unparsed.isEmpty)
    }

    @Test func shutdownRefusesNewRequests() {
        var m = Machine.handshaken()
        #expect(m.shutdownRequested() == [.send(Machine.goingAway, error: nil)])
        #expect(m.shutdownRequested() == [])
        #expect(m.feed(requestFrame(.getTraderState, id: 5), now: 1) == [
            sendError(id: 5, method: .getTraderState, .shuttingDown, "server shutting down; retry on another instance or later"),
        ])
    }

    @Test func oversizedFrameIsAViolation() {
        var m = Machine.handshaken(settings(maxFrameBytes: 64))
        let actions = m.feed(requestFrame(.getTraderState, id: 5, payload: [UInt8](repeating: 0, count: 100)), now: 1)
        guard case .protocolViolation(.protocolError, _) = actions.first else {
            Issue.record("expected a protocol violation, got \(actions)")
            return
        }
        #expect(actions.count == 2 && m.closeAfterFlush)
    }
}

extension ConnectionStateMachine {
    /// `checkTimeouts` on a copy, for a one-line expectation.
    func checkTimeoutsCopy(now: UInt64) -> [Action] {
        var copy = self
        return copy.checkTimeouts(now: now)
    }
}
