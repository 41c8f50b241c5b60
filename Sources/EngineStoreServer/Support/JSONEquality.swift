import Foundation

/// Two JSON texts mean the same (key order and spacing aside); nil and nil are the same.
func sameJSON(_ a: String?, _ b: String?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    if a == b { return true }
    guard let x = try? JSONSerialization.jsonObject(with: Data(a.utf8), options: [.fragmentsAllowed]),
          let y = try? JSONSerialization.jsonObject(with: Data(b.utf8), options: [.fragmentsAllowed]) else { return false }
    return jsonEqual(x, y)
}

/// Deep equality of two values from JSONSerialization (numbers compared by value).
func jsonEqual(_ x: Any, _ y: Any) -> Bool {
    switch (x, y) {
    case (let a as [String: Any], let b as [String: Any]):
        guard a.count == b.count else { return false }
        return a.allSatisfy { k, v in b[k].map { jsonEqual(v, $0) } ?? false }
    case (let a as [Any], let b as [Any]):
        return a.count == b.count && zip(a, b).allSatisfy { jsonEqual($0, $1) }
    case (let a as String, let b as String):
        return a == b
    case (is NSNull, is NSNull):
        return true
    case (let a as NSNumber, let b as NSNumber) where isBool(a) || isBool(b):
        return isBool(a) && isBool(b) && a.boolValue == b.boolValue
    default:
        if let a = jsonNumber(x), let b = jsonNumber(y) { return a == b }
        return false
    }
}

/// JSONSerialization gives true/false as boolean NSNumbers (type "c"); numbers come as "i", "q" or "d".
private func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

private func jsonNumber(_ v: Any) -> Double? {
    switch v {
    case let n as NSNumber: return n.doubleValue
    case let i as Int: return Double(i)
    case let d as Double: return d
    default: return nil
    }
}
