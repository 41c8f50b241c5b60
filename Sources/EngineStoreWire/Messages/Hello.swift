/// Hello (method 1): the first request on every connection; negotiates the version.
public struct HelloRequest: WireMessage {
    public var minVersion: UInt32
    public var maxVersion: UInt32
    public var clientName: String?

    public init(minVersion: UInt32 = 1, maxVersion: UInt32 = 1, clientName: String? = nil) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.clientName = clientName
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var minV: UInt32?
        var maxV: UInt32?
        var name: String?
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "min_version"); minV = try f.uint32("min_version")
            case 2: try r.once(f, "max_version"); maxV = try f.uint32("max_version")
            case 3: try r.once(f, "client_name"); name = try f.string("client_name")
            default: break
            }
        }
        minVersion = try required(minV, "min_version")
        maxVersion = maxV ?? minVersion
        clientName = name
    }

    public func encode(into w: inout FieldWriter) {
        w.uint(1, UInt64(minVersion))
        w.uint(2, UInt64(maxVersion))
        w.string(3, clientName)
    }
}

/// HelloOk: the chosen version and the limits the client must respect.
public struct HelloResponse: WireMessage {
    public var version: UInt32
    public var serverName: String
    public var serverVersion: String
    public var maxFrameBytes: UInt32
    public var maxInFlight: UInt32
    public var instanceID: String
    /// Method ids this server implements.
    public var methods: [UInt64]

    public init(version: UInt32, serverName: String, serverVersion: String, maxFrameBytes: UInt32,
                maxInFlight: UInt32, instanceID: String, methods: [UInt64]) {
        self.version = version
        self.serverName = serverName
        self.serverVersion = serverVersion
        self.maxFrameBytes = maxFrameBytes
        self.maxInFlight = maxInFlight
        self.instanceID = instanceID
        self.methods = methods
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var version: UInt32?
        var serverName = ""
        var serverVersion = ""
        var maxFrame: UInt32?
        var maxInFlight: UInt32 = 0
        var instance = ""
        var methods: [UInt64] = []
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "version"); version = try f.uint32("version")
            case 2: try r.once(f, "server_name"); serverName = try f.string("server_name")
            case 3: try r.once(f, "server_version"); serverVersion = try f.string("server_version")
            case 4: try r.once(f, "max_frame_bytes"); maxFrame = try f.uint32("max_frame_bytes")
            case 5: try r.once(f, "max_in_flight"); maxInFlight = try f.uint32("max_in_flight")
            case 6: try r.once(f, "instance_id"); instance = try f.string("instance_id")
            case 7: methods.append(try f.uint64("methods"))
            default: break
            }
        }
        self.version = try required(version, "version")
        self.serverName = serverName
        self.serverVersion = serverVersion
        self.maxFrameBytes = try required(maxFrame, "max_frame_bytes")
        self.maxInFlight = maxInFlight
        self.instanceID = instance
        self.methods = methods
    }

    public func encode(into w: inout FieldWriter) {
        w.uint(1, UInt64(version))
        w.string(2, serverName)
        w.string(3, serverVersion)
        w.uint(4, UInt64(maxFrameBytes))
        w.uint(5, UInt64(maxInFlight))
        w.string(6, instanceID)
        w.uints(7, methods)
    }
}
