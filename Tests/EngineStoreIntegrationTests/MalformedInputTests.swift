import EngineStoreClient
import Foundation
import TestHarness
import Testing

/// A live server answers bad bytes with a typed error or a clean close, and keeps serving others.
@Suite struct MalformedInputTests {
    static func healthFrame(id: UInt32) -> [UInt8] {
        Frame.encode(header: FrameHeader(kind: .request, method: 2, requestID: id), message: HealthRequest())
    }

    /// Health on a raw connection.
    static func health(_ c: RawConnection, id: UInt32) throws -> HealthResponse? {
        guard let f = try c.request(2, id: id, HealthRequest()), f.header.kind == .response, f.header.requestID == id else { return nil }
        return try HealthResponse(payload: f.payload)
    }

    @Test func badInputNeverDisturbsAnotherConnection() async throws {
        let s = try await RunningServer.start()
        let path = s.socketPath
        // Everything runs on raw connections: a client that reconnects and retries by itself would hide a
        // server that drops other connections. The bystander is handshaken before any bad input and must
        // answer a Ping on the same connection after each case.
        let failures: [String] = try await offPool {
            var failures: [String] = []
            func check(_ ok: Bool, _ what: String) { if !ok { failures.append(what) } }
            let bystander = try RawConnection(path: path)
            try bystander.hello()
            var pings: UInt32 = 100
            func bystanderAnswers(_ after: String) throws {
                pings += 1
                check(try bystander.ping(id: pings), "bystander silent after \(after)")
            }
            try bystanderAnswers("Hello")
            let connectionsBefore = try Self.health(bystander, id: 99)?.openConnections

            // 1. Length below the header size: protocol_error, then close.
            do {
                let c = try RawConnection(path: path)
                c.send([0, 0, 0, 3, 1, 1, 0])
                check(errorPayload(try c.readFrame())?.errorCode == .protocolError, "1: protocol_error")
                check(c.isClosedByServer(), "1: closed")
            }
            try bystanderAnswers("case 1")
            // 2. Oversize announced length: rejected before buffering.
            do {
                let c = try RawConnection(path: path)
                c.send([0x7f, 0xff, 0xff, 0xff, 1, 1])
                check(errorPayload(try c.readFrame())?.errorCode == .protocolError, "2: protocol_error")
                check(c.isClosedByServer(), "2: closed")
            }
            try bystanderAnswers("case 2")
            // 3. Request before Hello: failed_precondition, then close.
            do {
                let c = try RawConnection(path: path)
                c.send(Self.healthFrame(id: 3))
                check(errorPayload(try c.readFrame())?.errorCode == .failedPrecondition, "3: failed_precondition")
                check(c.isClosedByServer(), "3: closed")
            }
            try bystanderAnswers("case 3")
            // 4. Wrong version byte: unsupported_version for that request; the connection stays usable.
            do {
                let c = try RawConnection(path: path)
                try c.hello()
                var frame = Self.healthFrame(id: 4)
                frame[4] = 9
                c.send(frame)
                let f = try c.readFrame()
                check(errorPayload(f)?.errorCode == .unsupportedVersion, "4: unsupported_version")
                check(f?.header.requestID == 4, "4: request id echoed")
                c.send(Self.healthFrame(id: 5))
                check(try c.readFrame()?.header.kind == .response, "4: still usable")
            }
            try bystanderAnswers("case 4")
            // 5. Unknown method: unimplemented.
            do {
                let c = try RawConnection(path: path)
                try c.hello()
                c.send(Frame(header: FrameHeader(kind: .request, method: 999, requestID: 6), payload: []).encoded())
                check(errorPayload(try c.readFrame())?.errorCode == .unimplemented, "5: unimplemented")
            }
            try bystanderAnswers("case 5")
            // 6. Garbage payload: a typed error, nothing written.
            do {
                let c = try RawConnection(path: path)
                try c.hello()
                c.send(Frame(header: FrameHeader(kind: .request, method: 16, requestID: 7), payload: [0xff, 0xff, 0xff, 0x07, 0x01]).encoded())
                let code = errorPayload(try c.readFrame())?.errorCode
                check(code == .protocolError || code == .invalidArgument, "6: typed error, got \(String(describing: code))")
            }
            try bystanderAnswers("case 6")
            // 7. Truncated frame, then the client goes away: the server neither answers the half frame nor
            // stalls on it, and it drops that connection (and only that one).
            do {
                let c = try RawConnection(path: path)
                try c.hello()
                c.send(Array(Self.healthFrame(id: 8).prefix(10)))
                try bystanderAnswers("case 7 (half frame sent)")
                // The server is waiting for the rest: completing the frame gets it answered, not an error.
                c.send(Array(Self.healthFrame(id: 8).dropFirst(10)))
                let f = try c.readFrame()
                check(f?.header.kind == .response && f?.header.requestID == 8, "7: completed frame answered")
                c.send(Array(Self.healthFrame(id: 9).prefix(10)))
            }
            // The half-frame client is gone: the server closes its end, the bystander is untouched.
            let end = ContinuousClock.now + .seconds(5)
            var connectionsAfter = try Self.health(bystander, id: 97)?.openConnections
            var id: UInt32 = 200
            while connectionsAfter != connectionsBefore && ContinuousClock.now < end {
                id += 1
                connectionsAfter = try Self.health(bystander, id: id)?.openConnections
            }
            check(connectionsAfter == connectionsBefore, "7: open connections \(String(describing: connectionsAfter)), want \(String(describing: connectionsBefore))")
            try bystanderAnswers("case 7")
            // 8. A client sending a response-kind frame: protocol_error and close.
            do {
                let c = try RawConnection(path: path)
                try c.hello()
                c.send(Frame(header: FrameHeader(kind: .response, method: 2, requestID: 9), payload: []).encoded())
                check(errorPayload(try c.readFrame())?.errorCode == .protocolError, "8: protocol_error")
                check(c.isClosedByServer(), "8: closed")
            }
            try bystanderAnswers("case 8")
            // 9. Hello offering only version 2: unsupported_version and close.
            do {
                let c = try RawConnection(path: path)
                c.send(Frame.encode(header: FrameHeader(kind: .request, method: 1, requestID: 1), message: HelloRequest(minVersion: 2, maxVersion: 2)))
                check(errorPayload(try c.readFrame())?.errorCode == .unsupportedVersion, "9: unsupported_version")
                check(c.isClosedByServer(), "9: closed")
            }
            try bystanderAnswers("case 9")
            check(try Self.health(bystander, id: 300)?.status == .ok, "bystander Health ok at the end")
            return failures
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(try s.postgres().exec("SELECT count(*) FROM positions").int(0, 0) == 0)
        await s.stop()
    }

    @Test func gracefulStopRemovesTheSocketFile() async throws {
        let s = try await RunningServer.start()
        let path = s.socketPath
        await s.stop()
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
