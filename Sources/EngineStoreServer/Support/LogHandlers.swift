import Foundation
import LibPQ
import Logging
import Synchronization

/// One line per event on stderr, as logfmt (`ts=… level=info msg="…" key=value`) or JSON.
/// The message and every metadata value first pass through `redactor`, which masks the configured
/// passwords wherever they appear (an error text from libpq or hiredis that echoes one, say).
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case logfmt, json
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let format: Format
    private let redactor: SecretRedactor
    /// Where lines go: nil = stderr (tests capture them).
    private let output: (@Sendable (String) -> Void)?

    private static let stderrLock = Mutex<Void>(())

    public init(label: String, format: Format, redactor: SecretRedactor = SecretRedactor(secrets: []),
                output: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        self.format = format
        self.redactor = redactor
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        var all = metadata
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error, all["error"] == nil { all["error"] = "\(error)" }
        let ts = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        var text: String
        let msg = redactor.redact(event.message.description)
        let fields = all.sorted(by: { $0.key < $1.key }).map { ($0.key, redactor.redact("\($0.value)")) }
        switch format {
        case .logfmt:
            text = "ts=\(ts) level=\(level) msg=\(Self.logfmtValue(msg))"
            for (k, v) in fields { text += " \(k)=\(Self.logfmtValue(v))" }
        case .json:
            text = "{\"ts\":\(Self.quote(ts)),\"level\":\"\(level)\",\"msg\":\(Self.quote(msg))"
            for (k, v) in fields { text += ",\(Self.quote(k)):\(Self.quote(v))" }
            text += "}"
        }
        text += "\n"
        if let output {
            output(text)
        } else {
            Self.stderrLock.withLock { _ in FileHandle.standardError.write(Data(text.utf8)) }
        }
    }

    /// A logfmt value: bare when it is only printable characters without space, `"`, `=` or `\\`,
    /// otherwise quoted and escaped (`quote`).
    static func logfmtValue(_ s: String) -> String {
        let bare = !s.isEmpty && !s.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.properties.isWhitespace || mustEscape($0)
        }
        return bare ? s : quote(s)
    }

    /// A JSON string literal (also used for quoted logfmt values) that holds no control or line-breaking
    /// character: `"` and `\\` are escaped, and so is every C0 control, DEL, C1 control (U+0080–U+009F,
    /// including NEL U+0085), U+2028, U+2029 and the bidirectional overrides, as `\\uXXXX`. A reader that
    /// splits on any line break therefore sees one line per event, whatever a value held.
    static func quote(_ s: String) -> String {
        var out = ""
        JSONObjectWriter.appendQuoted(s, to: &out, escape: mustEscape)
        return out
    }

    /// Characters a log value never carries raw: C0 controls, DEL, C1 controls, the line and
    /// paragraph separators, and the bidirectional embedding/override/isolate controls (which can
    /// make a line display as something else).
    static func mustEscape(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x00...0x1f, 0x7f...0x9f, 0x2028, 0x2029, 0x202a...0x202e, 0x2066...0x2069: true
        default: false
        }
    }
}
