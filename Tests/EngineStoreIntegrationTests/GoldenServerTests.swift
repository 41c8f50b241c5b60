import EngineStoreClient
import Foundation
import TestHarness
import Testing

/// Golden frames say what a server sends, so they are checked against a live one where its answer is
/// deterministic apart from server time.
@Suite struct GoldenServerTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("proto-spec/golden")

    /// The frame in a golden file (hex, `#` comments).
    static func golden(_ file: String) throws -> Frame {
        let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
        var digits = ""
        for line in text.split(separator: "\n") where !line.hasPrefix("#") { digits += line.filter(\.isHexDigit) }
        var bytes: [UInt8] = []
        var i = digits.startIndex
        while i < digits.endIndex {
            let j = digits.index(i, offsetBy: 2)
            bytes.append(UInt8(digits[i..<j], radix: 16)!)
            i = j
        }
        return try FrameParser.decodeSingle(bytes)
    }

    /// save_trader_state.request.hex sent as is to a new database: the answer is
    /// save_trader_state.response.hex byte for byte once `updated_at_ms` (server time) is set to the golden's.
    @Test func saveTraderStateResponseIsWhatTheServerSends() async throws {
        let request = try Self.golden("save_trader_state.request.hex")
        let expected = try Self.golden("save_trader_state.response.hex")
        let frame = try #require(try await Self.answer(to: request))
        #expect(frame.header == expected.header)
        var sent = try TraderStateResponse(payload: frame.payload)
        let golden = try TraderStateResponse(payload: expected.payload)
        #expect(sent.state.updatedAtMs != nil)
        sent.state.updatedAtMs = golden.state.updatedAtMs
        #expect(sent == golden)
        #expect(Frame(header: frame.header, payload: sent.encodedPayload()).encoded() == expected.encoded())
    }

    /// record_conversation.request.hex on a new database: record_conversation.response.hex byte for byte
    /// (the first conversation's id is 1; the time is the request's).
    @Test func recordConversationResponseIsWhatTheServerSends() async throws {
        let request = try Self.golden("record_conversation.request.hex")
        let expected = try Self.golden("record_conversation.response.hex")
        #expect(try #require(try await Self.answer(to: request)).encoded() == expected.encoded())
    }

    /// What a server on a new database answers to `request`, sent as is after Hello.
    static func answer(to request: Frame) async throws -> Frame? {
        let s = try await RunningServer.start()
        let path = s.socketPath
        let reply: Frame? = try await offPool {
            let raw = try RawConnection(path: path)
            try raw.hello()
            raw.send(request.encoded())
            return try raw.readFrame()
        }
        await s.stop()
        return reply
    }
}
