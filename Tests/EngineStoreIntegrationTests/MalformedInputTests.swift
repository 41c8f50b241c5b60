import EngineStoreClient
import Foundation
import Testing

/// A live server answers bad bytes with a typed error or a clean close, and keeps serving others.
@Suite struct MalformedInputTests {
    static func healthFrame(id: UInt32) -> [UInt8] {
        Frame.encode(header: FrameHeader(kind: .request, method: 2, requestID: id), message: HealthRequest())
    }

    @Test func badInputNeverDisturbsAnotherConnection() async throws {
        let s = try await RunningServer.start()
        let good = s.client()
        _ = try await good.health()

        // 1. Length below the header size: protocol_error, then close.
        do {
            let c = try RawConnection(path: s.socketPath)
            c.send([0, 0, 0, 3, 1, 1, 0])
            let e = errorPayload(try c.readFrame())
            #expect(e?.errorCode == .protocolError)
            #expect(c.isClosedByServer())
        }
        // 2. Oversize announced length: rejected before buffering.
        do {
            let c = try RawConnection(path: s.socketPath)
            c.send([0x7f, 0xff, 0xff, 0xff, 1, 1])
            #expect(errorPayload(try c.readFrame())?.errorCode == .protocolError)
            #expect(c.isClosedByServer())
        }
        // 3. Request before Hello: failed_precondition, then close.
        do {
            let c = try RawConnection(path: s.socketPath)
            c.send(Self.healthFrame(id: 3))
            #expect(errorPayload(try c.readFrame())?.errorCode == .failedPrecondition)
            #expect(c.isClosedByServer())
        }
        // 4. Wrong version byte: unsupported_version for that request; the connection stays usable.
        do {
            let c = try RawConnection(path: s.socketPath)
            try c.hello()
            var frame = Self.healthFrame(id: 4)
            frame[4] = 9
            c.send(frame)
            let f = try c.readFrame()
            #expect(errorPayload(f)?.errorCode == .unsupportedVersion)
            #expect(f?.header.requestID == 4)
            c.send(Self.healthFrame(id: 5))
            #expect(try c.readFrame()?.header.kind == .response)
        }
        // 5. Unknown method: unimplemented.
        do {
            let c = try RawConnection(path: s.socketPath)
            try c.hello()
            c.send(Frame(header: FrameHeader(kind: .request, method: 999, requestID: 6), payload: []).encoded())
            #expect(errorPayload(try c.readFrame())?.errorCode == .unimplemented)
        }
        // 6. Garbage payload: a typed error, nothing written.
        do {
            let c = try RawConnection(path: s.socketPath)
            try c.hello()
            c.send(Frame(header: FrameHeader(kind: .request, method: 16, requestID: 7), payload: [0xff, 0xff, 0xff, 0x07, 0x01]).encoded())
            let code = errorPayload(try c.readFrame())?.errorCode
            #expect(code == .protocolError || code == .invalidArgument)
        }
        // 7. Truncated frame, then the client goes away: nothing happens to anyone else.
        do {
            let c = try RawConnection(path: s.socketPath)
            try c.hello()
            c.send(Array(Self.healthFrame(id: 8).prefix(10)))
        }
        // 8. A client sending a response-kind frame: protocol_error and close.
        do {
            let c = try RawConnection(path: s.socketPath)
            try c.hello()
            c.send(Frame(header: FrameHeader(kind: .response, method: 2, requestID: 9), payload: []).encoded())
            #expect(errorPayload(try c.readFrame())?.errorCode == .protocolError)
            #expect(c.isClosedByServer())
        }
        // 9. Hello offering only version 2: unsupported_version and close.
        do {
            let c = try RawConnection(path: s.socketPath)
            c.send(Frame.encode(header: FrameHeader(kind: .request, method: 1, requestID: 1), message: HelloRequest(minVersion: 2, maxVersion: 2)))
            #expect(errorPayload(try c.readFrame())?.errorCode == .unsupportedVersion)
            #expect(c.isClosedByServer())
        }

        let after = try await good.health()
        #expect(after.status == .ok)
        #expect(try s.postgres().exec("SELECT count(*) FROM positions").int(0, 0) == 0)
        await good.close()
        await s.stop()
    }

    @Test func gracefulStopRemovesTheSocketFile() async throws {
        let s = try await RunningServer.start()
        let path = s.socketPath
        await s.stop()
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
