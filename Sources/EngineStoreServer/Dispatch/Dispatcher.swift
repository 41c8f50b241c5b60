import EngineStoreWire

/// One family of RPCs (one file each under RPC/). `handle` runs on the event loop thread: it must
/// only decode, validate and queue work, never block. A thrown error is answered at once.
protocol RPCFamily: Sendable {
    var methods: [Method] { get }
    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError)
}

/// Routes a request to the family that owns its method.
struct Dispatcher: Sendable {
    private let routes: [UInt16: any RPCFamily]

    init(families: [any RPCFamily]) {
        var routes: [UInt16: any RPCFamily] = [:]
        for family in families {
            for method in family.methods { routes[method.rawValue] = family }
        }
        self.routes = routes
    }

    /// HelloResponse.methods: every method of the RPC table that is answered here. Session methods
    /// (Hello, Ping) are answered by the event loop itself; the rest need a family.
    var implementedMethods: [UInt64] {
        RPC.all.filter { $0.kind == .session || routes[$0.method.rawValue] != nil }.map { UInt64($0.method.rawValue) }
    }

    func dispatch(method rawMethod: UInt16, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        guard let method = Method(rawValue: rawMethod), let family = routes[rawMethod] else {
            throw ServiceError(.unimplemented, "method \(rawMethod) is not implemented by this server")
        }
        try family.handle(method, payload: payload, reply: reply)
    }
}

extension WireMessage {
    /// Decodes a request payload, turning codec errors into invalid_argument naming the field.
    static func decodeRequest(_ payload: ArraySlice<UInt8>) throws(ServiceError) -> Self {
        do {
            return try Self(payload: payload)
        } catch {
            throw ServiceError(wire: error)
        }
    }
}

extension IdempotentRequest {
    /// Decodes a write request and checks its idempotency key (§9), the first check of every write.
    static func decodeWrite(_ payload: ArraySlice<UInt8>) throws(ServiceError) -> Self {
        let request = try decodeRequest(payload)
        try Validate.identifier(request.idempotencyKey, "idempotency_key")
        return request
    }
}

extension ServiceContext {
    /// Queues a validated write: `IdempotentWrite` runs `body` once per idempotency key and answers a
    /// retry (same key, same payload bytes) with the recorded reply (§9).
    func submitWrite(_ request: some IdempotentRequest, _ method: Method, payload: ArraySlice<UInt8>,
                     body: some WriteBody, reply: ReplyTarget) {
        postgres.submit(IdempotentWrite(key: request.idempotencyKey, method: method.rawValue,
                                        digest: requestDigest(payload), body: body, reply: reply))
    }
}
