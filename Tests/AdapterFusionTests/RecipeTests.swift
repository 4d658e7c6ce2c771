import AdapterFusion
import Foundation
import Testing

@Suite struct RecipeTests {
    static let good = """
        # fuse three adapters for spam
        fusion spam_fusion
          base    models/all-MiniLM-L6-v2
          store   runs/store.h5
          task    tasks/sms_spam.toml
          compose fuse(trec, sentiment, stack(boolq, banking77), fuse(sms_spam, sentiment_score))   # nested
          options static, temperature anneal, lambda 0.1
          train   epochs 4, lr 1e-3, batch 16, max_length 64, seed 3, patience 1, max_train 500, max_dev 100, warmup 0.2, weight_decay 0
        """

    @Test func parsesEveryConstruct() throws {
        let r = try Recipe.parse(Self.good, file: "good.fuse")
        #expect(r.name == "spam_fusion" && r.base == "models/all-MiniLM-L6-v2" && r.store == "runs/store.h5" && r.taskPath == "tasks/sms_spam.toml")
        #expect(
            r.expr
                == .fuse([
                    .adapter("trec"), .adapter("sentiment"), .stack([.adapter("boolq"), .adapter("banking77")]),
                    .fuse([.adapter("sms_spam"), .adapter("sentiment_score")]),
                ]))
        #expect(r.expr.adapterNames == ["trec", "sentiment", "boolq", "banking77", "sms_spam", "sentiment_score"])
        #expect(!r.options.dynamic && r.options.anneal && r.options.lambda == 0.1)
        let t = r.training
        #expect(t.epochs == 4 && t.learningRate == 1e-3 && t.batchSize == 16 && t.maxLength == 64 && t.seed == 3 && t.patience == 1)
        #expect(t.maxTrain == 500 && t.maxDev == 100 && t.warmupFraction == 0.2 && t.weightDecay == 0)
        // The canonical text parses back to the same expression.
        let again = try Recipe.parse("fusion x\nbase b\nstore s\ntask t\ncompose \(r.expr)\n", file: "x")
        #expect(again.expr == r.expr)
    }

    @Test func defaultsMultiLineAndWeights() throws {
        let r = try Recipe.parse(
            """
            fusion avg
              base "models/with space"
              store runs/store.h5
              task tasks/t.toml
              compose average(
                0.25 * a,    # a comment inside the expression
                0.75 * stack(b, c)
              )
            """, file: "a.fuse")
        #expect(r.base == "models/with space")
        #expect(r.expr == .average([.adapter("a"), .stack([.adapter("b"), .adapter("c")])], weights: [0.25, 0.75]))
        #expect(r.options == FusionOptions())
        #expect(r.training.learningRate == 5e-5 && r.training.epochs == 5)
        let p = try Recipe.parse("fusion p\nbase b\nstore s\ncompose parallel(a, b, c)\n", file: "p.fuse")
        #expect(p.taskPath == nil && p.expr == .parallel([.adapter("a"), .adapter("b"), .adapter("c")]))
    }

    /// Each malformed recipe: the error's first line (file:line:col: error: message) and, where
    /// there is one, a piece of its hint. The caret line is checked for the first case.
    static let mistakes: [(String, String, String?)] = [
        // 1 misspelt setting
        ("fusion x\nbase b\nstore s\ntask t\ncompse fuse(a, b)\n", "m.fuse:5:1: error: unknown setting 'compse'", "did you mean 'compose'?"),
        // 2 missing header
        ("base b\nstore s\n", "m.fuse:1:1: error: expected 'fusion NAME' as the first line, found 'base'", nil),
        // 3 misspelt header keyword
        ("fusoin x\n", "m.fuse:1:1: error: expected 'fusion NAME'", "did you mean 'fusion'?"),
        // 4 bad recipe name
        ("fusion my.fusion\n", "m.fuse:1:8: error: name 'my.fusion' must be letters, digits, '_' or '-'", nil),
        // 5 setting twice
        ("fusion x\ntask a\ntask b\n", "m.fuse:3:1: error: 'task' is set twice", "first set on line 2"),
        // 6 missing compose
        ("fusion x\nbase b\nstore s\ntask t\n", "m.fuse:1:8: error: recipe 'x' has no 'compose' line", nil),
        // 7 missing task
        ("fusion x\nbase b\nstore s\ncompose fuse(a, b)\n", "m.fuse:1:8: error: recipe 'x' has no 'task' line", nil),
        // 8 misspelt composition
        ("fusion x\ncompose fuze(a, b)\n", "m.fuse:2:9: error: unknown composition 'fuze'", "did you mean 'fuse'?"),
        // 9 unclosed parenthesis
        ("fusion x\ncompose fuse(a, b\n", "m.fuse:2:13: error: '(' is never closed", "add ')'"),
        // 10 extra closing parenthesis
        ("fusion x\ncompose fuse(a, b))\n", "m.fuse:2:19: error: unexpected ')' after the composition", nil),
        // 11 empty member list
        ("fusion x\ncompose fuse()\n", "m.fuse:2:14: error: 'fuse()' has no members", nil),
        // 12 a single member
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose stack(a)\n", "m.fuse:5:9: error: stack(…) needs at least two members, has 1",
            "use the member alone"
        ),
        // 13 trailing comma
        ("fusion x\ncompose fuse(a, b,)\n", "m.fuse:2:19: error: expected a member after ','", "remove the trailing comma"),
        // 14 missing comma
        ("fusion x\ncompose fuse(a b)\n", "m.fuse:2:16: error: expected ',' or ')', found 'b'", nil),
        // 15 adapter twice
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, stack(b, a))\n", "m.fuse:5:26: error: adapter 'a' appears twice in the composition",
            "first at line 5, column 14"
        ),
        // 16 parallel nested
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, parallel(b, c))\n",
            "m.fuse:5:17: error: parallel(…) can only be the whole composition", nil
        ),
        // 17 weight outside average
        ("fusion x\nbase b\nstore s\ntask t\ncompose fuse(0.5 * a, b)\n", "m.fuse:5:14: error: weights are only for average(…)", nil),
        // 18 partly weighted average
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose average(0.5 * a, b)\n", "m.fuse:5:26: error: this member of a weighted average has no weight",
            "weight all members or none"
        ),
        // 19 negative weight
        ("fusion x\nbase b\nstore s\ntask t\ncompose average(-1 * a, 2 * b)\n", "m.fuse:5:17: error: average weights must be positive", nil),
        // 20 misspelt fusion option
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\noptions dynamic, tempreature 2\n",
            "m.fuse:6:18: error: unknown fusion option 'tempreature'", "did you mean 'temperature'?"
        ),
        // 21 contradictory options
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\noptions dynamic, static\n",
            "m.fuse:6:18: error: 'static' contradicts 'dynamic' (line 6)", nil
        ),
        // 22 bad temperature
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\noptions temperature 0\n",
            "m.fuse:6:21: error: temperature must be a number > 0 or 'anneal', not '0'", nil
        ),
        // 23 misspelt training setting
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\ntrain epochs 2, learning_rate 1e-4\n",
            "m.fuse:6:17: error: unknown training setting 'learning_rate'", nil
        ),
        // 24 not a number
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\ntrain lr fast\n", "m.fuse:6:10: error: lr must be a number in (0, 1), not 'fast'",
            nil
        ),
        // 25 out of range
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\ntrain epochs 0\n",
            "m.fuse:6:14: error: epochs must be an integer in 1...1000, not '0'", nil
        ),
        // 26 trailing comma in options
        ("fusion x\nbase b\nstore s\ntask t\ncompose fuse(a, b)\ntrain epochs 2,\n", "m.fuse:6:16: error: expected an option after ','", nil),
        // 27 '=' instead of a space
        ("fusion x\ntask = t\n", "m.fuse:2:6: error: unexpected character '='", "without '='"),
        // 28 unterminated string
        ("fusion x\nbase \"models/a\n", "m.fuse:2:6: error: unterminated string", nil),
        // 29 two values on a path line
        ("fusion x\nstore a.h5 b.h5\n", "m.fuse:2:12: error: unexpected 'b.h5' after the store path", "one setting per line"),
        // 30 second header
        ("fusion x\nfusion y\n", "m.fuse:2:1: error: a second 'fusion' header", "one recipe per file"),
        // 31 empty file
        ("# only a comment\n", "m.fuse:2:1: error: empty recipe", nil),
        // 32 parallel with a task
        (
            "fusion x\nbase b\nstore s\ntask t\ncompose parallel(a, b)\n",
            "m.fuse:4:6: error: a parallel recipe runs its members' own heads and has no task", nil
        ),
        // 33 a function name without arguments
        ("fusion x\ncompose fuse\n", "m.fuse:2:13: error: expected '(' after 'fuse'", nil),
        // 34 composite member of parallel
        ("fusion x\nbase b\nstore s\ncompose parallel(a, fuse(b, c))\n", "m.fuse:4:21: error: the members of parallel(…) must be adapter names", nil),
    ]

    @Test func malformedRecipes() throws {
        // Each mistake is diagnosed by its own message: no two collapse into one generic error.
        var seen: [String: String] = [:]
        for (text, first, hint) in Self.mistakes {
            do {
                _ = try Recipe.parse(text, file: "m.fuse")
                Issue.record("accepted: \(text.debugDescription)")
            } catch let e as SourceError {
                let lines = e.description.split(separator: "\n").map(String.init)
                #expect(lines[0].hasPrefix(first), "\(text.debugDescription)\n  got: \(lines[0])")
                let message = e.message
                #expect(
                    seen[message] == nil, "\(text.debugDescription) and \(seen[message]?.debugDescription ?? "") give the same message: \(message)")
                seen[message] = text
                if let hint { #expect(e.description.contains(hint), "\(text.debugDescription)\n  got: \(e.description)") }
                if e.line > 0 { #expect(lines.count >= 2, "no source line quoted for \(text.debugDescription)") }
            }
        }
    }

    @Test func caretPointsAtTheColumn() throws {
        let e = try #require(throws: SourceError.self) {
            try Recipe.parse("fusion x\ncompose fuze(a, b)\n", file: "c.fuse")
        }
        #expect(
            e.description == """
                c.fuse:2:9: error: unknown composition 'fuze'
                    compose fuze(a, b)
                            ^
                    hint: did you mean 'fuse'?
                """)
    }

    /// Checks against a store: unknown adapter with a suggestion, other base model, other hidden
    /// size, and a name taken by an adapter.
    @Test func checksAgainstTheStore() throws {
        let r = try Recipe.parse("fusion sms_spam\nbase b\nstore s\ntask t\ncompose fuse(trec, sentimnt)\n", file: "s.fuse")
        func rec(_ name: String, base: String = "B", hidden: Int = 384) -> AdapterRecord {
            AdapterRecord(
                name: name, task: name, taskFile: "", labels: [], metric: "accuracy", adapterConfig: AdapterConfig(),
                headConfig: HeadConfig(kind: .classification, outputs: 2), baseModel: "m", baseFingerprint: base,
                hiddenSize: hidden, numLayers: 6, devMetrics: [], bestEpoch: 0, settings: TrainingConfig(), seed: 0, created: "")
        }
        #expect { try r.check(baseFingerprint: "B", hiddenSize: 384, records: [rec("trec"), rec("sentiment")]) } throws: {
            "\($0)".hasPrefix("s.fuse:5:20: error: unknown adapter 'sentimnt'") && "\($0)".contains("did you mean 'sentiment'?")
        }
        let ok = try Recipe.parse("fusion f\nbase b\nstore s\ntask t\ncompose fuse(trec, sentiment)\n", file: "s.fuse")
        #expect { try ok.check(baseFingerprint: "B", hiddenSize: 384, records: [rec("trec", base: "OTHER"), rec("sentiment")]) } throws: {
            "\($0)".hasPrefix("s.fuse:5:14: error: adapter 'trec' was trained on another base model")
        }
        #expect { try ok.check(baseFingerprint: "B", hiddenSize: 384, records: [rec("trec"), rec("sentiment", hidden: 768)]) } throws: {
            "\($0)".hasPrefix("s.fuse:5:20: error: adapter 'sentiment' has hidden size 768")
        }
        #expect { try ok.check(baseFingerprint: "B", hiddenSize: 384, records: [rec("trec"), rec("sentiment"), rec("f")]) } throws: {
            "\($0)".hasPrefix("s.fuse:1:8: error: the store already has an adapter named 'f'")
        }
        #expect(try ok.check(baseFingerprint: "B", hiddenSize: 384, records: [rec("trec"), rec("sentiment")]).count == 2)
    }

    @Test func shippedRecipesParse() throws {
        let dir = Support.packageRoot.appendingPathComponent("fusion-recipes")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".fuse") }
        #expect(files.count >= 2)
        for f in files { _ = try Recipe.load(dir.appendingPathComponent(f).path) }
    }
}
