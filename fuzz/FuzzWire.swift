// libFuzzer target over the wire codec: the frame splitter and every message decoder.
// Built by fuzz/run with `swiftc -sanitize=fuzzer,address` together with Sources/EngineStoreWire.
// Any input must decode or throw a WireError — never trap, never read out of bounds — and what
// decodes must re-encode to bytes that decode to the same value.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // 1. The frame splitter over the whole input, frame after frame.
    var rest = bytes[...]
    while true {
        guard let step = try? FrameParser.next(in: rest, maxFrameBytes: 1 << 20), case .frame(let frame, let consumed) = step else { break }
        decodeAll(frame.payload)
        rest = rest.dropFirst(consumed)
    }
    // 2. Every message decoder over the raw input as a payload.
    decodeAll(bytes[...])
    return 0
}

func check<M: WireMessage>(_: M.Type, _ payload: ArraySlice<UInt8>) {
    guard let value = try? M(payload: payload) else { return }
    let again = value.encodedPayload()
    guard let decoded = try? M(payload: again) else { fatalError("\(M.self): re-encoded bytes do not decode") }
    // NaN payloads compare unequal to themselves; compare encodings instead.
    if decoded.encodedPayload() != again { fatalError("\(M.self): encoding not stable") }
}

/// Every message type of the schema, from the generated list (a new message is fuzzed without edits here).
func decodeAll(_ p: ArraySlice<UInt8>) {
    for type in WireMessages.all { check(type, p) }
}
