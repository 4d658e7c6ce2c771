import Foundation

/// How user text appears in messages: long values cut short, invisible characters named.
public enum Snippet {
    /// At most 40 characters of `s`, with "…" when cut.
    public static func cut(_ s: String) -> String { s.count > 40 ? s.prefix(40) + "…" : s }

    /// "U+00A0 NO-BREAK SPACE" for each scalar of `c`: invisible and look-alike characters
    /// are named, not just quoted.
    public static func describe(_ c: Character) -> String {
        let named = c.unicodeScalars.map { u in
            String(format: "U+%04X", u.value) + (u.properties.name.map { " " + $0 } ?? "")
        }.joined(separator: ", ")
        let visible = c.unicodeScalars.allSatisfy {
            !$0.properties.isWhitespace && $0.properties.generalCategory != .control
                && $0.properties.generalCategory != .format && $0.properties.generalCategory != .spaceSeparator
        }
        return visible ? "'\(c)' (\(named))" : named
    }

}
