/// Protocol version spoken by this codec.
public let protocolVersion: UInt8 = 1

/// What a frame is. Requests go client → server; the other three server → client.
public enum FrameKind: UInt8, Sendable, CaseIterable {
    case request = 1
    case response = 2
    case error = 3
    case notice = 4
}

/// Header flag bits. Unknown bits are ignored by receivers.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Request: this is a retry of an earlier attempt with the same idempotency key.
    public static let retry = FrameFlags(rawValue: 1 << 0)
    /// Response: the outcome was recorded earlier under the same idempotency key and is replayed.
    public static let replayed = FrameFlags(rawValue: 1 << 1)
}

/// The fixed 14-byte header at the start of every frame body (all integers big-endian).
///
///     offset size field
///     0      1    version
///     1      1    kind
///     2      2    method
///     4      4    request id
///     8      2    flags
///     10     4    deadline (ms from receipt; 0 = none)
public struct FrameHeader: Equatable, Sendable {
    public static let size = 14

    public var version: UInt8
    public var kind: FrameKind
    public var method: UInt16
    public var requestID: UInt32
    public var flags: FrameFlags
    public var deadlineMs: UInt32

    public init(version: UInt8 = protocolVersion, kind: FrameKind, method: UInt16, requestID: UInt32,
                flags: FrameFlags = [], deadlineMs: UInt32 = 0) {
        self.version = version
        self.kind = kind
        self.method = method
        self.requestID = requestID
        self.flags = flags
        self.deadlineMs = deadlineMs
    }
}

extension FrameHeader {
    /// The 14 header bytes, big-endian.
    func write(into w: inout ByteWriter) {
        w.write(version)
        w.write(kind.rawValue)
        w.writeBigEndian(method)
        w.writeBigEndian(requestID)
        w.writeBigEndian(flags.rawValue)
        w.writeBigEndian(deadlineMs)
    }
}

/// One decoded frame: header plus payload bytes (a field-tagged message, see `FieldReader`).
public struct Frame: Equatable, Sendable {
    public var header: FrameHeader
    public var payload: ArraySlice<UInt8>

    public init(header: FrameHeader, payload: ArraySlice<UInt8>) {
        self.header = header
        self.payload = payload
    }

    public init(header: FrameHeader, payload: [UInt8]) {
        self.init(header: header, payload: payload[...])
    }

    /// Length prefix + header + payload.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 4 + FrameHeader.size + payload.count)
        Frame.encode(header: header, payload: payload, into: &w)
        return w.bytes
    }

    public static func encode<C: Collection>(header: FrameHeader, payload: C, into w: inout ByteWriter)
    where C.Element == UInt8 {
        w.writeBigEndian(UInt32(FrameHeader.size + payload.count))
        header.write(into: &w)
        w.write(contentsOf: payload)
    }

    /// Encodes a message as a frame without an intermediate payload array.
    public static func encode<M: WireMessage>(header: FrameHeader, message: M, into w: inout ByteWriter) {
        let start = w.count
        w.writeBigEndian(UInt32(0))
        header.write(into: &w)
        var fw = FieldWriter(w)
        message.encode(into: &fw)
        w = fw.writer
        w.patchBigEndian(UInt32(w.count - start - 4), at: start)
    }

    public static func encode<M: WireMessage>(header: FrameHeader, message: M) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        encode(header: header, message: message, into: &w)
        return w.bytes
    }
}

/// Incremental frame splitter: feed it the bytes received so far, take complete frames out.
/// The announced length is checked against the limit before any buffer grows for it.
public enum FrameParser {
    public enum Step: Equatable, Sendable {
        /// Not enough bytes for a complete frame; `needed` is the total the next frame needs, when known.
        case needMore(needed: Int?)
        /// A frame and the number of bytes it took (prefix included).
        case frame(Frame, consumed: Int)
    }

    /// Peeks at `buffer` and returns the first complete frame, if any.
    /// Throws for a length below the header size or above `maxFrameBytes`, and for an unknown kind:
    /// after any of these the stream cannot be resynchronised and the connection should close.
    /// A version other than 1 is not an error here: the header is returned so the caller can answer it.
    public static func next(in buffer: ArraySlice<UInt8>, maxFrameBytes: UInt32) throws(WireError) -> Step {
        guard buffer.count >= 4 else { return .needMore(needed: nil) }
        let s = buffer.startIndex
        let length = UInt32(buffer[s]) << 24 | UInt32(buffer[s + 1]) << 16 | UInt32(buffer[s + 2]) << 8 | UInt32(buffer[s + 3])
        guard length >= UInt32(FrameHeader.size) else { throw .frameTooShort(length) }
        guard length <= maxFrameBytes else { throw .frameTooLarge(announced: length, limit: maxFrameBytes) }
        let total = 4 + Int(length)
        guard buffer.count >= total else { return .needMore(needed: total) }
        var r = ByteReader(buffer[(s + 4)..<(s + total)])
        let version = try r.readByte("header.version")
        let kindRaw = try r.readByte("header.kind")
        guard let kind = FrameKind(rawValue: kindRaw) else { throw .unknownFrameKind(kindRaw) }
        let method = try r.readBigEndian(UInt16.self, "header.method")
        let requestID = try r.readBigEndian(UInt32.self, "header.request_id")
        let flags = FrameFlags(rawValue: try r.readBigEndian(UInt16.self, "header.flags"))
        let deadline = try r.readBigEndian(UInt32.self, "header.deadline_ms")
        let header = FrameHeader(version: version, kind: kind, method: method, requestID: requestID,
                                 flags: flags, deadlineMs: deadline)
        let payload = buffer[(s + 4 + FrameHeader.size)..<(s + total)]
        return .frame(Frame(header: header, payload: payload), consumed: total)
    }

    /// Decodes exactly one frame occupying all of `bytes` (used by golden tests and the fuzzer).
    public static func decodeSingle(_ bytes: [UInt8], maxFrameBytes: UInt32 = WireLimits.defaultMaxFrameBytes) throws(WireError) -> Frame {
        switch try next(in: bytes[...], maxFrameBytes: maxFrameBytes) {
        case .needMore:
            throw .truncated("frame")
        case .frame(let f, let consumed):
            guard consumed == bytes.count else { throw .outOfRange(field: "frame", reason: "trailing bytes after frame") }
            return f
        }
    }
}
