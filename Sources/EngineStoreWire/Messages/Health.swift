/// Health (method 2): no fields.
public struct HealthRequest: WireMessage {
    public init() {}
    public init(from r: inout FieldReader) throws(WireError) {
        while try r.next() != nil {}
    }
    public func encode(into w: inout FieldWriter) {}
}

public enum HealthStatus: UInt8, Sendable, CustomStringConvertible {
    /// Service, Postgres and Redis all answer.
    case ok = 1
    /// Writes work (Postgres answers) but Redis does not: caches lag.
    case degraded = 2
    /// Postgres does not answer: writes fail.
    case unhealthy = 3

    public var description: String {
        switch self {
        case .ok: "ok"
        case .degraded: "degraded"
        case .unhealthy: "unhealthy"
        }
    }
}

/// One dependency as the service sees it.
public struct ComponentHealth: WireMessage {
    public var ok: Bool
    /// Round trip of a trivial command, microseconds (0 when not ok).
    public var latencyMicros: UInt64
    public var error: String?

    public init(ok: Bool, latencyMicros: UInt64, error: String? = nil) {
        self.ok = ok
        self.latencyMicros = latencyMicros
        self.error = error
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var ok = false
        var latency: UInt64 = 0
        var error: String?
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "ok"); ok = try f.bool("ok")
            case 2: try r.once(f, "latency_us"); latency = try f.uint64("latency_us")
            case 3: try r.once(f, "error"); error = try f.string("error")
            default: break
            }
        }
        self.ok = ok
        self.latencyMicros = latency
        self.error = error
    }

    public func encode(into w: inout FieldWriter) {
        w.bool(1, ok)
        w.uint(2, latencyMicros)
        w.string(3, error)
    }
}

public struct HealthResponse: WireMessage {
    public var status: HealthStatus
    public var postgres: ComponentHealth
    public var redis: ComponentHealth
    public var uptimeMs: UInt64
    public var openConnections: UInt32
    public var instanceID: String
    public var serverVersion: String

    public init(status: HealthStatus, postgres: ComponentHealth, redis: ComponentHealth, uptimeMs: UInt64,
                openConnections: UInt32, instanceID: String, serverVersion: String) {
        self.status = status
        self.postgres = postgres
        self.redis = redis
        self.uptimeMs = uptimeMs
        self.openConnections = openConnections
        self.instanceID = instanceID
        self.serverVersion = serverVersion
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var status: HealthStatus?
        var pg: ComponentHealth?
        var redis: ComponentHealth?
        var uptime: UInt64 = 0
        var conns: UInt32 = 0
        var instance = ""
        var version = ""
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "status"); status = try f.enumeration("status")
            case 2: try r.once(f, "postgres"); pg = try f.message("postgres")
            case 3: try r.once(f, "redis"); redis = try f.message("redis")
            case 4: try r.once(f, "uptime_ms"); uptime = try f.uint64("uptime_ms")
            case 5: try r.once(f, "open_connections"); conns = try f.uint32("open_connections")
            case 6: try r.once(f, "instance_id"); instance = try f.string("instance_id")
            case 7: try r.once(f, "server_version"); version = try f.string("server_version")
            default: break
            }
        }
        self.status = try required(status, "status")
        self.postgres = try required(pg, "postgres")
        self.redis = try required(redis, "redis")
        self.uptimeMs = uptime
        self.openConnections = conns
        self.instanceID = instance
        self.serverVersion = version
    }

    public func encode(into w: inout FieldWriter) {
        w.uint(1, UInt64(status.rawValue))
        w.message(2, postgres)
        w.message(3, redis)
        w.uint(4, uptimeMs)
        w.uint(5, UInt64(openConnections))
        w.string(6, instanceID)
        w.string(7, serverVersion)
    }
}

/// Ping (method 6): a no-op round trip answered by the I/O thread, touching neither Postgres nor Redis.
/// The response echoes `payload` (at most 1 KiB).
public struct PingMessage: WireMessage {
    public var payload: [UInt8]

    public init(payload: [UInt8] = []) { self.payload = payload }

    public init(from r: inout FieldReader) throws(WireError) {
        var payload: [UInt8] = []
        while let f = try r.next() {
            if f.number == 1 {
                try r.once(f, "payload")
                payload = try f.bytes("payload")
                guard payload.count <= 1024 else { throw .outOfRange(field: "payload", reason: "longer than 1024 bytes") }
            }
        }
        self.payload = payload
    }

    public func encode(into w: inout FieldWriter) {
        if !payload.isEmpty { w.bytes(1, payload) }
    }
}
