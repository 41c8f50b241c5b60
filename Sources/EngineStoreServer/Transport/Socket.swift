import CLinuxShims
import EventPoll
import Glibc

/// Unix-domain stream sockets: the listener and its path handling.
enum UnixSocket {
    static func fillAddress(_ path: String) throws -> (sockaddr_un, socklen_t) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else {
            throw ConfigurationError("socket path longer than \(capacity - 1) bytes: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return (addr, len)
    }

    /// True when something accepts connections on `path` (a live server).
    static func isLive(_ path: String) -> Bool {
        guard let (addr, len) = try? fillAddress(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var a = addr
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) }
        }
        return rc == 0
    }

    /// Binds a non-blocking listener. A stale socket file (nobody listening) is removed first;
    /// a live one makes this fail, so two servers never share a path.
    /// Refuses a socket directory others could use to swap the socket: world-writable without the
    /// sticky bit (unless allowed). Returns a warning for a world-writable directory with the sticky bit.
    static func checkDirectory(of path: String, allowWorldWritable: Bool) throws -> String? {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var st = stat()
        guard stat(dir.isEmpty ? "/" : dir, &st) == 0 else { throw ConfigurationError("socket directory \(dir) does not exist") }
        let worldWritable = st.st_mode & S_IWOTH != 0
        let sticky = st.st_mode & S_ISVTX != 0
        if worldWritable && !sticky && !allowWorldWritable {
            throw ConfigurationError("socket directory \(dir) is world-writable: another user could replace the socket; "
                                     + "use a private directory or pass --allow-world-writable-dir")
        }
        return worldWritable ? "socket directory \(dir) is world-writable (sticky bit set: others cannot replace the socket)" : nil
    }

    static func listen(path: String, mode: mode_t, backlog: Int32 = 1024) throws -> Int32 {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw ConfigurationError("\(path) exists and is not a socket; refusing to remove it")
            }
            if isLive(path) {
                throw ConfigurationError("another server is listening on \(path)")
            }
            unlink(path)
        }
        let (addr, len) = try fillAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var a = addr
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard rc == 0 else {
            let e = SystemError("bind \(path)")
            close(fd)
            throw e
        }
        chmod(path, mode)
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = SystemError("listen")
            close(fd)
            throw e
        }
        return fd
    }
}

/// A configuration problem found at start: fatal, with a message saying what to fix.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
