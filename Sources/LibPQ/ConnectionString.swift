import Foundation
/// Removes passwords from a libpq connection string (URI or keyword/value form) so it can be logged.
public func redactConnectionString(_ s: String) -> String {
    var out = s
    // URI form: scheme://user:password@host…  → scheme://user:***@host…
    if let schemeEnd = out.range(of: "://") {
        let rest = out[schemeEnd.upperBound...]
        if let at = rest.firstIndex(of: "@") {
            let userinfo = rest[rest.startIndex..<at]
            if let colon = userinfo.firstIndex(of: ":") {
                out.replaceSubrange(out.index(after: colon)..<at, with: "***")
            }
        }
    }
    // password=… as a keyword or a URI query parameter.
    for marker in ["password=", "password ="] {
        var searchStart = out.startIndex
        while let r = out.range(of: marker, options: [.caseInsensitive], range: searchStart..<out.endIndex) {
            var end = r.upperBound
            while end < out.endIndex, out[end] == " " { end = out.index(after: end) }
            if end < out.endIndex, out[end] == "'" {
                // Quoted value: up to the closing quote.
                var i = out.index(after: end)
                while i < out.endIndex, out[i] != "'" { i = out.index(after: i) }
                end = i < out.endIndex ? out.index(after: i) : i
            } else {
                while end < out.endIndex, out[end] != " ", out[end] != "&" { end = out.index(after: end) }
            }
            out.replaceSubrange(r.upperBound..<end, with: "***")
            searchStart = out.index(r.upperBound, offsetBy: 3, limitedBy: out.endIndex) ?? out.endIndex
        }
    }
    return out
}
