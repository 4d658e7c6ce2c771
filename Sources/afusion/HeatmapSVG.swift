import Foundation

/// A heatmap of values in [0, 1] as SVG: one row per layer, one column per adapter, the value
/// in each cell, white (0) to dark blue (1).
func heatmapSVG(title: String, rows: [(label: String, values: [Double])], columns: [String]) -> String {
    // Cells wide enough for the longest column label (about 7 px a character at 12 px).
    let cellW = max(64, 7 * (columns.map(\.count).max() ?? 0) + 12)
    let cellH = 48
    let left = 150
    let top = 70
    let height = top + cellH * rows.count + 30
    let width = max(left + cellW * columns.count + 20, 20 + title.count * 9)
    func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
    var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">\(esc(title))</text>\n"
    for (j, c) in columns.enumerated() {
        svg += "<text x=\"\(left + j * cellW + cellW / 2)\" y=\"\(top - 8)\" text-anchor=\"middle\">\(esc(c))</text>\n"
    }
    for (i, row) in rows.enumerated() {
        let y = top + i * cellH
        svg += "<text x=\"\(left - 8)\" y=\"\(y + cellH / 2 + 4)\" text-anchor=\"end\">\(esc(row.label))</text>\n"
        for (j, v) in row.values.enumerated() {
            // White (0) to dark blue (1).
            let t = min(max(v, 0), 1)
            let (r, g, b) = (Int(255 - 227 * t), Int(255 - 185 * t), Int(255 - 120 * t))
            svg += "<rect x=\"\(left + j * cellW)\" y=\"\(y)\" width=\"\(cellW - 2)\" height=\"\(cellH - 2)\" fill=\"rgb(\(r),\(g),\(b))\"/>\n"
            svg +=
                "<text x=\"\(left + j * cellW + cellW / 2 - 1)\" y=\"\(y + cellH / 2 + 4)\" text-anchor=\"middle\" fill=\"\(t > 0.55 ? "white" : "black")\">\(String(format: "%.2f", v))</text>\n"
        }
    }
    return svg + "</svg>\n"
}
