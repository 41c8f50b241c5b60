@testable import EngineStoreServer
import EngineStoreWire
import Testing

@Suite struct MachineDeadlineTests {
    @Test func expiredRequestsAreAnsweredOnceAndLateRepliesDropped() {
        var m = Machine.handshaken()
        _ = m.feed(requestFrame(.savePosition, id: 9, deadlineMs: 50), now: 0)
        #expect(m.expireDeadlines(now: 49 * ms) == [])
        #expect(m.expireDeadlines(now: 50 * ms) == [sendError(id: 9, method: .savePosition, .deadlineExceeded, deadlineFrameMessage)])
        #expect(m.inFlight == 0 && m.expireDeadlines(now: 60 * ms) == [])
        var estimates = ReplyEstimates()
        #expect(m.replyArrived(requestID: 9, token: 1, frame: replyFrame(id: 9, method: .savePosition), now: 61 * ms,
                               estimates: &estimates) == [])
    }

    @Test func aReplyPastItsDeadlineIsNotTheAnswer() {
        var m = Machine.handshaken()
        _ = m.feed(requestFrame(.savePosition, id: 9, deadlineMs: 50), now: 0)
        var estimates = ReplyEstimates()
        #expect(m.replyArrived(requestID: 9, token: 1, frame: replyFrame(id: 9, method: .savePosition), now: 50 * ms,
                               estimates: &estimates) == [sendError(id: 9, method: .savePosition, .deadlineExceeded, deadlineFrameMessage)])
    }

    @Test func aReplyWithAnotherTokenIsDropped() {
        var m = Machine.handshaken()
        _ = m.feed(requestFrame(.savePosition, id: 9), now: 0)
        var estimates = ReplyEstimates()
        #expect(m.replyArrived(requestID: 9, token: 99, frame: replyFrame(id: 9, method: .savePosition), now: 1,
                               estimates: &estimates) == [])
        #expect(m.inFlight == 1)
    }
}

@Suite struct MachineOutputCapTests {
    @Test func repliesOnTheirWayCountAgainstTheCap() {
        // 1024 bytes are set aside per request until a method has answered; the cap is 4000.
        var m = Machine.handshaken(settings(maxInFlight: 16, maxOutputBytes: 4000))
        let frames = (1...6).flatMap { requestFrame(.getTraderState, id: UInt32($0)) }
        #expect(m.feed(frames, now: 1).count == 4)
        #expect(m.reservedOutput == 4096 && !m.underOutputCap && !m.wantsRead)
        // A 3000-byte reply stays queued (unread by the peer): still over the cap.
        var estimates = ReplyEstimates()
        let big = replyFrame(id: 1, method: .getTraderState, bytes: 3000 - 4 - FrameHeader.size)
        #expect(big.count == 3000)
        #expect(m.replyArrived(requestID: 1, token: 1, frame: big, now: 2, estimates: &estimates) == [.send(big, error: nil)])
        #expect(m.parseAll(now: 3, estimates: estimates) == [])
        // The peer takes it: under the cap again, and the next request reserves what the method was seen to need.
        m.didWrite(3000)
        #expect(m.flushEnded(wrote: true, now: 4) == [])
        #expect(Machine.dispatched(m.parseAll(now: 5, estimates: estimates))?.requestID == 5)
        #expect(m.pending[5]?.reserve == 3000 && m.reservedOutput == 6072 && !m.underOutputCap)
    }

    @Test func aHalfFrameDoesNotTimeOutWhileCapped() {
        var m = Machine.handshaken(settings(maxInFlight: 16, maxOutputBytes: 2000))
        _ = m.feed(requestFrame(.getTraderState, id: 1) + Array(requestFrame(.getTraderState, id: 2).prefix(6)), now: 10 * ms)
        #expect(m.partialSinceNanos == 10 * ms)
        // A reply the peer does not read puts the connection over its cap: the server holds the frame up.
        var estimates = ReplyEstimates()
        let big = replyFrame(id: 1, method: .getTraderState, bytes: 2500)
        _ = m.replyArrived(requestID: 1, token: 1, frame: big, now: 11 * ms, estimates: &estimates)
        #expect(!m.underOutputCap)
        #expect(m.checkTimeouts(now: 211 * ms) == [])
        m.writeAll(now: 212 * ms)
        #expect(m.checkTimeouts(now: 213 * ms) == [.close(.frameTimeout)])
    }

    @Test func aPeerThatTakesNothingHitsTheWriteTimeout() {
        var m = Machine.handshaken()
        _ = m.shutdownRequested()
        #expect(m.flushEnded(wrote: false, now: 10 * ms) == [])
        #expect(m.writeStalledSinceNanos == 10 * ms)
        #expect(m.checkTimeouts(now: 310 * ms) == [])
        // Progress restarts the clock; output still pending is never idle.
        m.didWrite(1)
        #expect(m.flushEnded(wrote: true, now: 200 * ms) == [])
        #expect(m.checkTimeouts(now: 500 * ms) == [])
        #expect(m.checkTimeouts(now: 501 * ms) == [.close(.writeTimeout)])
    }
}

@Suite struct MachineConnectionEndTests {
    @Test func peerCloseForgetsRequestsInFlight() {
        var m = Machine.handshaken()
        _ = m.feed(requestFrame(.getTraderState, id: 1) + requestFrame(.savePosition, id: 2), now: 0)
        #expect(m.inFlight == 2)
        #expect(m.peerClosed() == [.close(.peerClosed)])
        #expect(m.inFlight == 0 && m.reservedOutput == 0 && !m.wantsRead)
        var estimates = ReplyEstimates()
        #expect(m.replyArrived(requestID: 1, token: 1, frame: replyFrame(id: 1, method: .getTraderState), now: 1,
                               estimates: &estimates) == [])
        #expect(m.expireDeadlines(now: .max) == [] && m.peerClosed() == [])
    }

    @Test func halfFrameTimeout() {
        var m = Machine.handshaken()
        _ = m.feed(Array(requestFrame(.getTraderState, id: 2).prefix(6)), now: 10 * ms)
        #expect(m.partialSinceNanos == 10 * ms)
        #expect(m.checkTimeouts(now: 210 * ms) == [])
        #expect(m.checkTimeouts(now: 211 * ms) == [.close(.frameTimeout)])
    }

    @Test func idleTimeoutOnlyWithNothingInFlight() {
        var m = Machine.handshaken()
        _ = m.feed(requestFrame(.getTraderState, id: 1), now: 0)
        #expect(m.checkTimeouts(now: 6000 * ms) == [])
        _ = m.expireDeadlines(now: 6000 * ms)
        m.writeAll(now: 6000 * ms)
        #expect(m.checkTimeouts(now: 11_000 * ms) == [])
        #expect(m.checkTimeouts(now: 11_001 * ms) == [.close(.idleTimeout)])
    }
}
