import EngineStoreWire
import Testing

@Suite struct CodecTests {
    @Test func varintRoundTrip() throws {
        for v: UInt64 in [0, 1, 127, 128, 300, 16_383, 16_384, UInt64(UInt32.max), UInt64.max] {
            var w = ByteWriter()
            w.writeVarint(v)
            var r = ByteReader(w.bytes)
            #expect(try r.readVarint("v") == v)
            #expect(r.isAtEnd)
        }
    }

    @Test func overlongVarintIsRejected() {
        var r = ByteReader([UInt8](repeating: 0xff, count: 11))
        #expect(throws: WireError.varintOverflow("v")) { try r.readVarint("v") }
        var r2 = ByteReader([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
        #expect(throws: WireError.varintOverflow("v")) { try r2.readVarint("v") }
    }

    @Test func signedIntegersUseZigZag() throws {
        for v: Int64 in [0, -1, 1, -64, 64, Int64.min, Int64.max] {
            let m = SavePositionRequest(idempotencyKey: "k", modelID: "m", symbol: "S", entryTimeMs: v)
            #expect(try SavePositionRequest(payload: m.encodedPayload()).entryTimeMs == v)
        }
        var w = FieldWriter()
        w.int(1, -1)
        #expect(w.writer.bytes == [0x08, 0x01])
    }

    @Test func unknownFieldsAreSkipped() throws {
        var w = FieldWriter()
        HelloRequest(minVersion: 1, maxVersion: 1, clientName: "x").encode(into: &w)
        w.string(99, "from the future")
        w.double(100, 1.5)
        w.uint(101, 7)
        w.writer.write(contentsOf: [0xb5, 0x06, 1, 2, 3, 4])  // field 102, fixed32
        let decoded = try HelloRequest(payload: w.writer.bytes)
        #expect(decoded == HelloRequest(minVersion: 1, maxVersion: 1, clientName: "x"))
    }

    @Test func missingOptionalFieldsDefault() throws {
        var w = FieldWriter()
        w.uint(1, 1)
        let hello = try HelloRequest(payload: w.writer.bytes)
        #expect(hello.maxVersion == 1)
        #expect(hello.clientName == nil)
    }

    @Test func missingRequiredFieldNamesTheField() {
        var w = FieldWriter()
        w.string(1, "key")
        w.string(2, "model")
        #expect(throws: WireError.missingField("symbol")) { try SavePositionRequest(payload: w.writer.bytes) }
    }

    @Test func duplicateFieldIsRejected() {
        var w = FieldWriter()
        w.uint(1, 1)
        w.uint(1, 1)
        #expect(throws: WireError.duplicateField("min_version")) { try HelloRequest(payload: w.writer.bytes) }
    }

    @Test func wrongWireTypeIsRejected() {
        var w = FieldWriter()
        w.string(1, "one")
        #expect(throws: WireError.wrongWireType(field: "min_version", got: 2)) { try HelloRequest(payload: w.writer.bytes) }
    }

    @Test func invalidUTF8IsRejected() {
        var w = FieldWriter()
        w.string(1, "k")
        w.string(2, "m")
        w.bytes(3, [0xc3, 0x28])
        #expect(throws: WireError.invalidUTF8("symbol")) { try SavePositionRequest(payload: w.writer.bytes) }
    }

    @Test func unknownEnumValueIsRejected() {
        var w = FieldWriter()
        w.string(1, "k")
        w.string(2, "m")
        w.string(3, "BTC")
        w.uint(5, 7)
        #expect(throws: WireError.outOfRange(field: "side", reason: "unknown enum value 7")) {
            try SavePositionRequest(payload: w.writer.bytes)
        }
    }

    @Test func boolOtherThanZeroOrOneIsRejected() {
        var w = FieldWriter()
        w.uint(1, 2)
        #expect(throws: WireError.self) { try ComponentHealth(payload: w.writer.bytes) }
    }

    /// Each bad Hello field is named by the decode error, which the server sends as `ErrorPayload.field` (§4.1, §5.5).
    @Test(arguments: BadHello.cases)
    func badHelloFieldIsNamed(_ c: BadHello) {
        let error = #expect(throws: WireError.self, "\(c.name)") { try HelloRequest(payload: c.payload) }
        #expect(error == c.error, "\(c.name)")
        #expect(error?.field == c.field, "\(c.name)")
    }

    @Test func lengthBeyondPayloadIsTruncated() {
        // field 3 (client_name), length 100, 2 bytes present
        let bytes: [UInt8] = [0x08, 0x01, 0x1a, 100, 0x41, 0x42]
        #expect(throws: WireError.truncated("field 3")) { try HelloRequest(payload: bytes) }
    }

    /// A message that nests itself in field 1, to drive the decoder past its depth limit.
    struct Nested: WireMessage {
        var child: [Nested]
        init(depth: Int) { child = depth > 0 ? [Nested(depth: depth - 1)] : [] }
        init(from r: inout FieldReader) throws(WireError) {
            child = []
            while let f = try r.next() { if f.number == 1 { child.append(try f.message("child")) } }
        }
        func encode(into w: inout FieldWriter) { w.messages(1, child) }
    }

    @Test func deepNestingIsRejected() throws {
        // The top level is depth 0; 16 nested levels are allowed, 17 are not.
        _ = try Nested(payload: Nested(depth: WireLimits.maxNestingDepth).encodedPayload())
        #expect(throws: WireError.nestingTooDeep) { try Nested(payload: Nested(depth: WireLimits.maxNestingDepth + 1).encodedPayload()) }
    }

    @Test func frameLimitsAreCheckedBeforeBuffering() {
        // Announces 5 GB: rejected from the 4 length bytes alone.
        #expect(throws: WireError.frameTooLarge(announced: 0xffff_ffff, limit: 1024)) {
            try FrameParser.next(in: [0xff, 0xff, 0xff, 0xff][...], maxFrameBytes: 1024)
        }
        #expect(throws: WireError.frameTooShort(3)) { try FrameParser.next(in: [0, 0, 0, 3][...], maxFrameBytes: 1024) }
        #expect(throws: WireError.unknownFrameKind(9)) {
            try FrameParser.next(in: [0, 0, 0, 14, 1, 9, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0][...], maxFrameBytes: 1024)
        }
    }

    @Test func partialFramesWait() throws {
        let frame = Frame.encode(header: FrameHeader(kind: .request, method: 2, requestID: 5), message: HealthRequest())
        for cut in 0..<frame.count {
            guard case .needMore = try FrameParser.next(in: frame[0..<cut], maxFrameBytes: 1024) else {
                Issue.record("frame cut at \(cut) should need more")
                return
            }
        }
        guard case .frame(let f, let consumed) = try FrameParser.next(in: (frame + frame)[...], maxFrameBytes: 1024) else {
            Issue.record("expected a frame")
            return
        }
        #expect(consumed == frame.count)
        #expect(f.header.requestID == 5)
    }

    @Test func truncatedInputNeverTraps() {
        // Every prefix of a full SavePosition payload either decodes or throws; none crash.
        let payload = SavePositionRequest(idempotencyKey: "k", modelID: "m", symbol: "BTC", exchangeProvider: "hl",
                                          side: .short, quantity: 1, entryPrice: 2, entryTimeMs: 1_764_201_600_000,
                                          exitPlanJSON: "{}").encodedPayload()
        for cut in 0..<payload.count {
            _ = try? SavePositionRequest(payload: payload[0..<cut])
        }
    }
}

/// A Hello payload with one bad field, and the decode error that names it.
struct BadHello: Sendable, CustomTestStringConvertible {
    let name: String
    let payload: [UInt8]
    let error: WireError
    var field: String? { error.field }
    var testDescription: String { name }

    static func fields(_ build: (inout FieldWriter) -> Void) -> [UInt8] {
        var w = FieldWriter()
        build(&w)
        return w.writer.bytes
    }

    static let cases: [BadHello] = [
        BadHello(name: "missing min_version", payload: fields { $0.uint(2, 1); $0.string(3, "x") },
                 error: .missingField("min_version")),
        BadHello(name: "min_version above 2^32-1", payload: fields { $0.uint(1, 1 << 32); $0.uint(2, 1) },
                 error: .outOfRange(field: "min_version", reason: "above 2^32-1")),
        BadHello(name: "invalid UTF-8 in client_name", payload: fields { $0.uint(1, 1); $0.bytes(3, [0xc3, 0x28]) },
                 error: .invalidUTF8("client_name")),
        BadHello(name: "duplicate client_name", payload: fields { $0.uint(1, 1); $0.string(3, "a"); $0.string(3, "b") },
                 error: .duplicateField("client_name")),
        BadHello(name: "max_version with the wrong wire type", payload: fields { $0.uint(1, 1); $0.double(2, 1) },
                 error: .wrongWireType(field: "max_version", got: 1)),
    ]
}
