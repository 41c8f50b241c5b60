/// Append-only byte buffer used by every encoder. Big-endian helpers are for the
/// frame header; little-endian ones for fixed-width payload fields.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func write(_ byte: UInt8) { bytes.append(byte) }
    public mutating func write<C: Collection>(contentsOf data: C) where C.Element == UInt8 {
        bytes.append(contentsOf: data)
    }

    public mutating func writeBigEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.bigEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeLittleEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    /// Unsigned LEB128 varint, 1 to 10 bytes.
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Overwrites four bytes at `offset` with a big-endian UInt32 (used to patch frame lengths).
    public mutating func patchBigEndian(_ value: UInt32, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: value >> 24)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}

/// Bounds-checked reader over a byte slice. Every read throws `WireError.truncated`
/// instead of trapping, so a decoder is a total function of its input. `what` names the part
/// read for the error; it is an autoclosure so the hot path never builds the text.
public struct ByteReader: Sendable {
    public let bytes: ArraySlice<UInt8>
    public private(set) var index: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    public var remaining: Int { bytes.endIndex - index }
    public var isAtEnd: Bool { index >= bytes.endIndex }

    public mutating func readByte(_ what: @autoclosure () -> String) throws(WireError) -> UInt8 {
        guard index < bytes.endIndex else { throw .truncated(what()) }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func readBytes(_ n: Int, _ what: @autoclosure () -> String) throws(WireError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw .truncated(what()) }
        defer { index += n }
        return bytes[index..<(index + n)]
    }

    public mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(what()) }
        var v: T = 0
        for i in 0..<size { v = (v << 8) | T(bytes[index + i]) }
        index += size
        return v
    }

    public mutating func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(what()) }
        var v: T = 0
        for i in (0..<size).reversed() { v = (v << 8) | T(bytes[index + i]) }
        index += size
        return v
    }

    /// Unsigned LEB128 varint; more than 10 bytes, or a 10th byte above 1, is an overflow.
    public mutating func readVarint(_ what: @autoclosure () -> String) throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for i in 0..<10 {
            let b = try readByte(what())
            if i == 9 && b > 1 { throw .varintOverflow(what()) }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
        throw .varintOverflow(what())
    }
}
