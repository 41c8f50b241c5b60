@testable import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import Logging
import Testing

/// Unit tests of what keeps log lines safe (issue 13, items 9 and 10): password redaction in
/// connection strings and error texts, and escaping of log values.
@Suite struct LogSafetyTests {
    // MARK: 9. Redaction

    @Test(arguments: [
        // Keyword form, libpq's rules: a backslash escapes the next character (here a space).
        (#"host=/tmp password=Secr\ etTail user=x"#, "host=/tmp password=*** user=x"),
        // Quoted, with \' and \\ escapes inside.
        (#"password='Se cr\'et\\x' dbname=d"#, "password=*** dbname=d"),
        (#"host=h password = 'abc def' port=5"#, "host=h password = *** port=5"),
        (#"sslpassword=KeyPass1 host=h"#, "sslpassword=*** host=h"),
        ("host=/tmp dbname=x user=y", "host=/tmp dbname=x user=y"),
        // URI: a malformed percent escape, an unencoded '@' and '/', a query parameter.
        ("postgresql://u:Secret%zzTail@/db?host=/tmp", "postgresql://u:***@/db?host=/tmp"),
        ("postgresql://u:p@ss/w@host/db", "postgresql://u:***@host/db"),
        ("postgres:///db?user=u&password=p%40ssword1&host=/tmp", "postgres:///db?user=u&password=***&host=/tmp"),
        ("postgresql://u@host/db", "postgresql://u@host/db"),
    ])
    func connectionStringsAreRedacted(_ input: String, _ expected: String) {
        #expect(redactConnectionString(input) == expected)
    }

    @Test func passwordsAreMaskedWhereverAnErrorTextEchoesThem() {
        let uri = SecretRedactor(connectionString: "postgresql://u:Secret%zzTail@/db")
        #expect(uri.redact(#"invalid percent-encoded token: "Secret%zzTail""#) == #"invalid percent-encoded token: "***""#)
        // As written and as decoded.
        let encoded = SecretRedactor(connectionString: "postgresql://u:p%40ssword9@h/db")
        #expect(encoded.redact("p%40ssword9 or p@ssword9") == "*** or ***")
        // An unencoded '/' makes libpq read part of the password as the port and echo it.
        let slash = SecretRedactor(connectionString: "postgresql://u:Sec1/ret2@h/db")
        #expect(slash.redact(#"invalid integer value "Sec1" for connection option "port""#)
                == #"invalid integer value "***" for connection option "port""#)
        let keyword = SecretRedactor(connectionString: #"password=Secr\ etTail"#)
        #expect(keyword.redact(#"x Secr etTail y Secr\ etTail"#) == "x *** y ***")
        #expect(SecretRedactor(connectionString: "dbname=x").redact("dbname=x") == "dbname=x")
        // Matched byte for byte (no Unicode equivalence games); values under 3 bytes are not searched for.
        #expect(SecretRedactor(secrets: ["pa\u{301}ss"]).redact("x pa\u{301}ss\u{301} y") == "x ***\u{301} y")
        #expect(SecretRedactor(secrets: ["ab"]).redact("abc") == "abc")
        let redis = RedisEndpoint(url: "redis://:RedisSecret1@127.0.0.1:1/0")!
        #expect(redis.redact("ERR RedisSecret1 rejected") == "ERR *** rejected")
    }

    /// Real libpq parse errors echo the password; PGConnection masks it before anyone sees the error.
    @Test func libpqErrorsComeBackRedacted() throws {
        for (conninfo, secret, echo) in [
            ("postgresql://u:Secret%zzTail@/db?host=/nonexistent", "Secret", "percent-encoded"),
            ("postgresql://u:Sec1/ret2@localhost/db", "Sec1", "port"),
        ] {
            do {
                _ = try PGConnection(conninfo: conninfo, connectTimeoutSeconds: 1)
                Issue.record("\(conninfo) connected")
            } catch {
                #expect(error.message.contains(echo), "libpq no longer echoes: \(error)")
                #expect(!error.description.contains(secret), "\(error)")
            }
        }
    }

    @Test func redisErrorsDoNotCarryThePassword() throws {
        let endpoint = RedisEndpoint(url: "redis://:RedisSecret1@127.0.0.1:1/0")!
        #expect(throws: RedisError.self) { _ = try RedisConnection(endpoint: endpoint, timeoutMs: 500) }
        do {
            _ = try RedisConnection(endpoint: endpoint, timeoutMs: 500)
        } catch {
            #expect(!error.description.contains("RedisSecret1"))
            #expect(error.description.contains("redis://:***@127.0.0.1:1/0"))
        }
    }

    /// The handler masks the configured passwords in the message and every value, whatever produced them.
    @Test func theLogHandlerMasksConfiguredSecretsInEveryValue() {
        let config = ServerConfiguration(socketPath: "/tmp/x.sock", postgresURL: "postgresql://u:PgSecret7@h/db",
                                         redis: RedisEndpoint(url: "redis://:RedisSecret1@h:6379/0")!)
        for format in LineLogHandler.Format.allCases {
            let capture = LogCapture()
            let logger = capture.logger(format: format, redactor: config.secretRedactor)
            logger.critical("cannot start: PgSecret7", metadata: ["reason": "startup_failed", "error": "echo PgSecret7 and RedisSecret1"])
            #expect(!capture.text.contains("PgSecret7") && !capture.text.contains("RedisSecret1"), "\(capture.text)")
            #expect(capture.text.contains("***"))
        }
    }

    /// An error passed as swift-log's `error:` is logged as the `error` field, masked like the rest.
    @Test func anErrorArgumentIsLoggedMasked() {
        struct Failure: Error, CustomStringConvertible { var description: String { "auth failed for PgSecret7" } }
        let config = ServerConfiguration(socketPath: "/tmp/x.sock", postgresURL: "postgresql://u:PgSecret7@h/db",
                                         redis: RedisEndpoint(url: "redis://h:6379/0")!)
        let capture = LogCapture()
        capture.logger(format: .logfmt, redactor: config.secretRedactor).error("connect failed", error: Failure())
        #expect(capture.text.contains(#"error="auth failed for ***""#), "\(capture.text)")
        #expect(!capture.text.contains("PgSecret7"))
    }

    // MARK: 10. Escaping

    /// Every control and line-breaking character: C0, DEL, C1 (NEL among them), U+2028, U+2029.
    static let dangerous: [Unicode.Scalar] = (Array(0x00...0x1f) + Array(0x7f...0x9f) + [0x2028, 0x2029, 0x202e])
        .compactMap { Unicode.Scalar(UInt32($0)) }

    @Test func logValuesEscapeEveryControlAndLineSeparator() throws {
        for format in LineLogHandler.Format.allCases {
            let capture = LogCapture()
            let logger = capture.logger(format: format)
            for c in Self.dangerous {
                let forged = "m\(Character(c))ts=2026-01-01T00:00:00Z level=critical msg=forged"
                logger.warning("consistency check found differences \(forged)",
                               metadata: ["reason": "cache_inconsistent", "first": "positions_cache nof0:positions:\(forged) BTC"])
            }
            let lines = capture.all
            #expect(lines.count == Self.dangerous.count)
            for (c, line) in zip(Self.dangerous, lines) {
                let hex = String(c.value, radix: 16)
                // One event, one line: the only line break is the final "\n", for any splitting rule.
                #expect(line.last == "\n")
                let body = line.dropLast()
                #expect(!body.unicodeScalars.contains { LineLogHandler.mustEscape($0) }, "U+\(hex) raw in \(format)")
                #expect(!body.contains { $0.isNewline }, "U+\(hex) breaks the \(format) line")
                #expect(line.split(whereSeparator: \.isNewline).count == 1)
                if format == .json {
                    // Still valid JSON, and the value comes back unchanged.
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                    #expect((object["first"] as? String)?.contains("m\(Character(c))ts=") == true, "U+\(hex)")
                }
            }
        }
        #expect(LineLogHandler.logfmtValue("m\u{85}x") == #""m\u0085x""#)
        #expect(LineLogHandler.logfmtValue("m\u{2028}x") == #""m\u2028x""#)
        #expect(LineLogHandler.logfmtValue("plain-value_1.0") == "plain-value_1.0")
        #expect(LineLogHandler.logfmtValue("a\u{a0}b") == "\"a\u{a0}b\"")
    }
}
