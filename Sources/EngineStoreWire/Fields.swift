/// Payload encoding: a sequence of tagged fields in the Protocol Buffers wire format.
/// tag = varint(field_number << 3 | wire_type); unknown fields are skipped, absent optional fields default.
public enum WireType: UInt8, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// A message that travels as a frame payload.
public protocol WireMessage: Sendable, Equatable {
    /// Decodes from the fields of one payload (or one nested message).
    init(from reader: inout FieldReader) throws(WireError)
    /// Encodes fields in ascending field-number order, omitting absent optionals.
    func encode(into writer: inout FieldWriter)
}

extension WireMessage {
    public init(payload: ArraySlice<UInt8>) throws(WireError) {
        var reader = FieldReader(payload, depth: 0)
        try self.init(from: &reader)
    }

    public init(payload: [UInt8]) throws(WireError) {
        try self.init(payload: payload[...])
    }

    public func encodedPayload() -> [UInt8] {
        var w = FieldWriter(ByteWriter(capacity: 64))
        encode(into: &w)
        return w.writer.bytes
    }
}

public struct FieldWriter: Sendable {
    public var writer: ByteWriter

    public init(_ writer: ByteWriter = ByteWriter()) { self.writer = writer }

    @inline(__always)
    mutating func tag(_ number: Int, _ type: WireType) {
        writer.writeVarint(UInt64(number) << 3 | UInt64(type.rawValue))
    }

    public mutating func uint(_ number: Int, _ value: UInt64?) {
        guard let value else { return }
        tag(number, .varint)
        writer.writeVarint(value)
    }

    /// Signed integers use ZigZag so small negatives stay short.
    public mutating func int(_ number: Int, _ value: Int64?) {
        guard let value else { return }
        tag(number, .varint)
        writer.writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func bool(_ number: Int, _ value: Bool?) {
        guard let value else { return }
        tag(number, .varint)
        writer.write(value ? 1 : 0)
    }

    /// IEEE-754 binary64, little-endian.
    public mutating func double(_ number: Int, _ value: Double?) {
        guard let value else { return }
        tag(number, .fixed64)
        writer.writeLittleEndian(value.bitPattern)
    }

    public mutating func string(_ number: Int, _ value: String?) {
        guard let value else { return }
        tag(number, .lengthDelimited)
        var v = value
        v.withUTF8 { utf8 in
            writer.writeVarint(UInt64(utf8.count))
            writer.write(contentsOf: utf8)
        }
    }

    public mutating func bytes(_ number: Int, _ value: [UInt8]?) {
        guard let value else { return }
        tag(number, .lengthDelimited)
        writer.writeVarint(UInt64(value.count))
        writer.write(contentsOf: value)
    }

    public mutating func message<M: WireMessage>(_ number: Int, _ value: M?) {
        guard let value else { return }
        tag(number, .lengthDelimited)
        var inner = FieldWriter(ByteWriter(capacity: 32))
        value.encode(into: &inner)
        writer.writeVarint(UInt64(inner.writer.count))
        writer.write(contentsOf: inner.writer.bytes)
    }

    public mutating func messages<M: WireMessage>(_ number: Int, _ values: [M]) {
        for v in values { message(number, v) }
    }

    public mutating func uints(_ number: Int, _ values: [UInt64]) {
        for v in values { uint(number, v) }
    }
}

/// One field as read off the wire; typed accessors check the wire type and range.
public struct Field: Sendable {
    public let number: Int
    public let wireType: WireType
    /// Varint value, or the raw bits of a fixed-width field.
    let scalar: UInt64
    /// Contents of a length-delimited field.
    let slice: ArraySlice<UInt8>
    let depth: Int

    private func expect(_ type: WireType, _ name: String) throws(WireError) {
        guard wireType == type else { throw .wrongWireType(field: name, got: wireType.rawValue) }
    }

    public func uint64(_ name: String) throws(WireError) -> UInt64 {
        try expect(.varint, name)
        return scalar
    }

    public func uint32(_ name: String) throws(WireError) -> UInt32 {
        try expect(.varint, name)
        guard scalar <= UInt64(UInt32.max) else { throw .outOfRange(field: name, reason: "above 2^32-1") }
        return UInt32(scalar)
    }

    public func int64(_ name: String) throws(WireError) -> Int64 {
        try expect(.varint, name)
        return Int64(bitPattern: (scalar >> 1) ^ (0 &- (scalar & 1)))
    }

    public func bool(_ name: String) throws(WireError) -> Bool {
        try expect(.varint, name)
        switch scalar {
        case 0: return false
        case 1: return true
        default: throw .outOfRange(field: name, reason: "bool must be 0 or 1")
        }
    }

    public func double(_ name: String) throws(WireError) -> Double {
        try expect(.fixed64, name)
        return Double(bitPattern: scalar)
    }

    public func string(_ name: String) throws(WireError) -> String {
        try expect(.lengthDelimited, name)
        guard let s = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8(name) }
        return s
    }

    public func bytes(_ name: String) throws(WireError) -> [UInt8] {
        try expect(.lengthDelimited, name)
        return Array(slice)
    }

    public func message<M: WireMessage>(_ name: String, as _: M.Type = M.self) throws(WireError) -> M {
        try expect(.lengthDelimited, name)
        guard depth + 1 <= WireLimits.maxNestingDepth else { throw .nestingTooDeep }
        var inner = FieldReader(slice, depth: depth + 1)
        return try M(from: &inner)
    }

    /// Enumerations travel as varints; a value this version does not know is out of range.
    public func enumeration<E: RawRepresentable>(_ name: String, as _: E.Type = E.self) throws(WireError) -> E
    where E.RawValue == UInt8 {
        try expect(.varint, name)
        guard scalar <= 255, let e = E(rawValue: UInt8(scalar)) else {
            throw .outOfRange(field: name, reason: "unknown enum value \(scalar)")
        }
        return e
    }
}

/// Iterates the fields of one message. Fixed-width and length-delimited contents are bounds-checked
/// against the remaining bytes before they are sliced (no allocation for an announced length).
public struct FieldReader: Sendable {
    var reader: ByteReader
    let depth: Int
    private var seenLow: UInt64 = 0
    private var seenHigh: Set<Int> = []

    public init(_ bytes: ArraySlice<UInt8>, depth: Int = 0) {
        self.reader = ByteReader(bytes)
        self.depth = depth
    }

    /// The next field, or nil at the end of the message.
    public mutating func next() throws(WireError) -> Field? {
        guard !reader.isAtEnd else { return nil }
        let key = try reader.readVarint("field tag")
        let number = key >> 3
        guard number >= 1, number <= WireLimits.maxFieldNumber else { throw .invalidFieldNumber(number) }
        let rawType = UInt8(key & 7)
        guard let type = WireType(rawValue: rawType) else { throw .unknownWireType(rawType) }
        switch type {
        case .varint:
            let v = try reader.readVarint("field \(number)")
            return Field(number: Int(number), wireType: type, scalar: v, slice: [], depth: depth)
        case .fixed64:
            let v = try reader.readLittleEndian(UInt64.self, "field \(number)")
            return Field(number: Int(number), wireType: type, scalar: v, slice: [], depth: depth)
        case .fixed32:
            let v = try reader.readLittleEndian(UInt32.self, "field \(number)")
            return Field(number: Int(number), wireType: type, scalar: UInt64(v), slice: [], depth: depth)
        case .lengthDelimited:
            let len = try reader.readVarint("field \(number)")
            guard len <= UInt64(reader.remaining) else { throw .truncated("field \(number)") }
            let s = try reader.readBytes(Int(len), "field \(number)")
            return Field(number: Int(number), wireType: type, scalar: 0, slice: s, depth: depth)
        }
    }

    /// Marks a non-repeated field as seen; a second occurrence is a duplicate.
    public mutating func once(_ field: Field, _ name: String) throws(WireError) {
        if field.number < 64 {
            let bit = UInt64(1) << UInt64(field.number)
            guard seenLow & bit == 0 else { throw .duplicateField(name) }
            seenLow |= bit
        } else {
            guard seenHigh.insert(field.number).inserted else { throw .duplicateField(name) }
        }
    }
}

/// Helper for required fields.
@inline(__always)
public func required<T>(_ value: T?, _ name: String) throws(WireError) -> T {
    guard let value else { throw .missingField(name) }
    return value
}
