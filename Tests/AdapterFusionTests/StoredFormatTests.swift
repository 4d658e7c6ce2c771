import AdapterFusion
import Foundation
import Testing

/// Stores written by earlier versions keep working. `Fixtures/oldstore/store.h5` was written by
/// the build of commit 587fe69 (before the store-conflict, training-in-library and file-split
/// changes) on a tiny model: nine adapters, one per method and placement, and three fusions (two
/// bottleneck members, a mixed LoRA/prefix/bottleneck fusion over whole layers, an average over
/// a stack). `expected.json` holds what that build printed: `eval`'s line and `predict --json`'s
/// probabilities for six texts. Loading also re-checks every weights fingerprint.
@Suite struct StoredFormatTests {
    static let entries = ["adapter": ["bf", "bn", "hb", "ia", "lo", "pa", "pr", "px", "un"], "fusion": ["fm", "fs", "fz"]]

    @Test func previousStoreLoadsAndComputesTheSame() throws {
        let fixture = try AdapterHubTests.fixtureDir().replacingOccurrences(of: "/adapterhub", with: "/oldstore")
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        for f in try FileManager.default.contentsOfDirectory(atPath: fixture) {
            try FileManager.default.copyItem(atPath: fixture + "/" + f, toPath: dir.appendingPathComponent(f).path)
        }
        let expected = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as? [String: Any])
        for (kind, names) in Self.entries {
            for name in names {
                let common = ["--store", "store.h5", "--\(kind)", name, "--model", "model", "--threads", "1"]
                let eval = try CLITests.run(["eval"] + common, in: dir)
                #expect(
                    eval.status == 0 && eval.out.split(separator: "\n").first.map(String.init) == expected["\(kind):\(name):eval"] as? String,
                    "\(kind) \(name): \(eval.out)\(eval.err)")
                let predict = try CLITests.run(["predict", "--json", "--file", "lines.txt"] + common, in: dir)
                let rows = predict.out.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
                }
                let got = rows.compactMap { $0["probabilities"] as? [String: Double] }.map { [$0["no"] ?? .nan, $0["yes"] ?? .nan] }
                let want = try #require(expected["\(kind):\(name)"] as? [[Double]])
                #expect(got.count == want.count, "\(kind) \(name): \(predict.err)")
                // Both printed with 6 decimals: equal up to the last digit's rounding.
                for (g, w) in zip(got.joined(), want.joined()) { #expect(abs(g - w) <= 2e-6, "\(kind) \(name): \(g) vs \(w)") }
            }
        }
        let inspect = try CLITests.run(["inspect", "store.h5"], in: dir)
        #expect(inspect.status == 0 && !inspect.out.contains("DAMAGED") && !inspect.out.contains("no:"), "\(inspect.out)")
    }
}
