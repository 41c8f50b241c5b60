/// Commands in RESP, the Redis protocol (`*<count>\r\n` then `$<length>\r\n<bytes>\r\n` per argument),
/// written straight into one byte buffer. A pipeline's commands go to hiredis as one formatted block
/// (`redisAppendFormattedCommand`): building an argv and sds strings per command was a fifth of the
/// cache writer thread's samples under trade events.
public enum RESP {
    /// Appends `args` as one command. Arguments are binary-safe: their UTF-8 bytes, with lengths.
    public static func appendCommand(_ args: [String], to out: inout [UInt8]) {
        appendCommandHeader(arguments: args.count, to: &out)
        for arg in args { appendArgument(arg, to: &out) }
    }

    /// Starts a command of `arguments` arguments, each then appended with `appendArgument`: a caller
    /// that knows its arguments writes them without building an argument list first.
    public static func appendCommandHeader(arguments: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "*"))
        appendDecimal(arguments, to: &out)
    }

    /// One argument: the string's UTF-8 bytes.
    public static func appendArgument(_ arg: String, to out: inout [UInt8]) {
        // Native strings are contiguous: no copy of the string (withUTF8 is mutating) per argument.
        if arg.utf8.withContiguousStorageIfAvailable({ appendBulk($0, to: &out) }) == nil {
            var arg = arg
            arg.withUTF8 { appendBulk($0, to: &out) }
        }
    }

    /// One argument: `n` in decimal, as `String(n)` would write it.
    public static func appendArgument(_ n: Int, to out: inout [UInt8]) {
        withDigits(n) { digits in appendBulk(digits, to: &out) }
    }

    private static func appendBulk(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "$"))
        appendDecimal(bytes.count, to: &out)
        out.append(contentsOf: bytes)
        out.append(0x0d)
        out.append(0x0a)
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
        withDigits(n) { out.append(contentsOf: $0) }
        out.append(0x0d)
        out.append(0x0a)
    }

    /// The decimal digits of `n` (a leading minus for a negative), written backwards into a buffer on
    /// the stack: reversing them in the output array copied the slice.
    private static func withDigits<R>(_ n: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var i = 20
            var v = n.magnitude
            repeat {
                i -= 1
                buffer[i] = 0x30 &+ UInt8(v % 10)
                v /= 10
            } while v > 0
            if n < 0 {
                i -= 1
                buffer[i] = UInt8(ascii: "-")
            }
            return body(UnsafeBufferPointer(rebasing: buffer[i...]))
        }
    }
}
