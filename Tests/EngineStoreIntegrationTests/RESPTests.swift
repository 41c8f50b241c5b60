import CHiredis
import Hiredis
import TestHarness
import Testing

/// The RESP encoder against hiredis's own formatter, byte for byte, and against a real Redis.
@Suite struct RESPTests {
    static let awkward: [[String]] = [
        ["PING"],
        ["SET", "", ""],
        ["SET", "k", "a\r\nb\0c"],
        ["HSET", "nof0:positions:modèle-1", "BTC", "{\"note\":\"émoji 😀, U+2028 \u{2028}\"}"],
        ["EVAL", String(repeating: "x", count: 12_345), "0"],
        Array(repeating: "arg", count: 123),
    ]

    /// hiredis's formatting of one command.
    static func hiredisFormat(_ args: [String]) -> [UInt8] {
        let bytes = args.map { Array($0.utf8) }
        var pointers: [UnsafeMutablePointer<CChar>?] = bytes.map { b in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, b.count))
            b.withUnsafeBufferPointer { src in
                src.withMemoryRebound(to: CChar.self) { if let base = $0.baseAddress { p.update(from: base, count: b.count) } }
            }
            return p
        }
        defer { pointers.forEach { $0?.deallocate() } }
        let lengths = bytes.map(\.count)
        var target: UnsafeMutablePointer<CChar>?
        let n = pointers.withUnsafeMutableBufferPointer { argv in
            argv.withMemoryRebound(to: UnsafePointer<CChar>?.self) { argv in
                redisFormatCommandArgv(&target, Int32(args.count), argv.baseAddress, lengths)
            }
        }
        defer { redisFreeCommand(target) }
        return Array(UnsafeRawBufferPointer(start: target, count: Int(n)))
    }

    @Test func commandsAreFormattedAsHiredisFormatsThem() {
        for args in Self.awkward {
            var mine: [UInt8] = []
            RESP.appendCommand(args, to: &mine)
            #expect(mine == Self.hiredisFormat(args), "\(args.prefix(3))")
        }
        #expect(RESP.commands(Self.awkward) == Self.awkward.flatMap(Self.hiredisFormat))
        // Every length from 0 to a few digits long.
        for n in [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65_536] {
            var mine: [UInt8] = []
            RESP.appendCommand([String(repeating: "z", count: n)], to: &mine)
            #expect(mine == Self.hiredisFormat([String(repeating: "z", count: n)]))
        }
    }

    @Test func aPipelineOfFormattedCommandsRoundTripsThroughRedis() async throws {
        let services = try await TestServices.shared()
        let prefix = "resp-test-\(UInt64.random(in: 0...UInt64.max)):"
        let replies = try await offPool {
            let connection = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
            let value = "a\r\nb\0c émoji 😀"
            return try connection.pipeline([
                ["SET", prefix + "k", value], ["GET", prefix + "k"], ["SET", prefix, "empty key"], ["GET", prefix],
                ["DEL", prefix + "k", prefix], ["GET", prefix + "k"],
            ])
        }
        #expect(replies.count == 6)
        #expect(replies[1] == .string(Array("a\r\nb\0c émoji 😀".utf8)))
        #expect(replies[3] == .string(Array("empty key".utf8)))
        #expect(replies[4] == .integer(2))
        #expect(replies[5] == .null)
    }

    /// The cache writer's form: commands written into a block the connection keeps between calls. A
    /// call after a burst (a block past the kept size, which is then dropped) and a shorter one after
    /// it each send exactly their own commands.
    @Test func writtenPipelinesReuseTheirBlockAndSendOnlyTheirOwnCommands() async throws {
        let services = try await TestServices.shared()
        let prefix = "resp-block-\(UInt64.random(in: 0...UInt64.max)):"
        let big = String(repeating: "v", count: 3 << 20)
        let batches: [[[String]]] = [
            [["SET", prefix + "a", "1"], ["SET", prefix + "b", "22"]],
            [["SET", prefix + "big", big], ["STRLEN", prefix + "big"]],
            [["GET", prefix + "a"]],
            [["DEL", prefix + "a", prefix + "b", prefix + "big"]],
        ]
        let replies = try await offPool {
            let connection = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
            return try batches.map { commands in
                try connection.pipeline(count: commands.count, writing: { out in
                    for command in commands { RESP.appendCommand(command, to: &out) }
                }, commands: { commands })
            }
        }
        #expect(replies.map(\.count) == [2, 2, 1, 1])
        #expect(replies[1][1] == .integer(3 << 20))
        #expect(replies[2][0] == .string(Array("1".utf8)))
        #expect(replies[3][0] == .integer(3))
    }
}
