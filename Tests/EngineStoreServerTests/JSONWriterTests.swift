@testable import EngineStoreServer
import Testing

/// The cache documents' writer quotes over UTF-8 bytes; its strings must come out exactly as the
/// scalar-by-scalar quoting (the log handlers' path) writes them under JSON's own rule.
@Suite struct JSONWriterTests {
    static let awkward = ["", "BTC", "a\"b", "back\\slash", "line\nbreak\r\ttab", "\u{0}\u{1}\u{1f}\u{7f}", "é", "日本語",
                          "🚀 rocket", "e\u{301}", "\u{2028}\u{85}", "mixed \"é\"\\\u{8} 🚀"]

    @Test(arguments: awkward) func bytesAndScalarsQuoteAlike(_ s: String) {
        var scalars: [UInt8] = []
        JSONObjectWriter.appendQuoted(s, to: &scalars, escape: { $0.value < 0x20 })
        var bytes: [UInt8] = []
        JSONObjectWriter.appendQuoted(s, to: &bytes)
        #expect(bytes == scalars)
    }

    /// The log handlers' rule adds DEL, C1 controls and U+2028 as `\uXXXX`.
    @Test func aWiderRuleEscapesMore() {
        var out = ""
        JSONObjectWriter.appendQuoted("a\u{7f}\u{85}\u{2028}é\"\n", to: &out, escape: LineLogHandler.mustEscape)
        #expect(out == #""a\u007f\u0085\u2028é\"\n""#)
    }

    @Test func anObjectHasEveryKindOfValue() {
        var j = JSONObjectWriter()
        j.string("s", "a\"\u{1}")
        j.string("none", nil)
        j.number("whole", 3)
        j.number("frac", 0.1)
        j.number("big", 1e20)
        j.number("nan", .nan)
        j.int("i", -42)
        j.bool("b", true)
        j.raw("r", #"{"x":[1]}"#)
        #expect(j.finish() == #"{"s":"a\"\u0001","none":null,"whole":3,"frac":0.1,"big":1e+20,"nan":null,"i":-42,"b":true,"r":{"x":[1]}}"#)
    }
}
