/// Write requests: they carry the idempotency key that makes retries exactly-once (proto-spec §9).
/// scripts/gen-wire adds the conformance to every request of a `write` method.
public protocol IdempotentRequest: WireMessage {
    var idempotencyKey: String { get set }
}
