/// Commands in RESP, the Redis protocol (`*<count>\r\n` then `$<length>\r\n<bytes>\r\n` per argument),
/// written straight into one byte buffer. A pipeline's commands go to hiredis as one formatted block
/// (`redisAppendFormattedCommand`): building an argv and sds strings per command was a fifth of the
/// cache writer thread's samples under trade events.
public enum RESP {
    /// Appends `args` as one command. Arguments are binary-safe: their UTF-8 bytes, with lengths.
    public static func appendCommand(_ args: [String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "*"))
        appendDecimal(args.count, to: &out)
        for arg in args {
            var arg = arg
            arg.withUTF8 { bytes in
                out.append(UInt8(ascii: "$"))
                appendDecimal(bytes.count, to: &out)
                out.append(contentsOf: bytes)
                out.append(0x0d)
                out.append(0x0a)
            }
        }
    }

    /// The bytes of `commands`, in order.
    public static func commands(_ commands: [[String]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(commands.reduce(0) { total, args in args.reduce(total + 16) { $0 + $1.utf8.count + 16 } })
        for args in commands { appendCommand(args, to: &out) }
        return out
    }

    /// `n` in decimal, then CRLF.
    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        precondition(n >= 0, "RESP counts and lengths are never negative")
        if n < 10 {
            out.append(0x30 &+ UInt8(n))
        } else {
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                         UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var count = 0
            var v = n
            withUnsafeMutableBytes(of: &digits) { buf in
                while v > 0 { buf[count] = 0x30 &+ UInt8(v % 10); v /= 10; count += 1 }
                for i in stride(from: count - 1, through: 0, by: -1) { out.append(buf[i]) }
            }
        }
        out.append(0x0d)
        out.append(0x0a)
    }
}
