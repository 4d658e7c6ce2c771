import AdapterFusion
import Foundation
import Testing

@Suite struct TokenizerTests {
    struct Golden: Decodable { let ids: [Int32] }
    struct Case: Decodable {
        let text: String?, bytes: [UInt8]?, pair: String?
        let max_length: Int?
        let ids: [Int32], type_ids: [Int32], tokens: [String]
    }

    func tokenizer() throws -> WordPieceTokenizer { try Support.model.get().1 }

    @Test func goldenSentenceIds() throws {
        let golden = try JSONDecoder().decode([String: Golden].self, from: Support.fixture("minilm-golden.json"))
        #expect(golden.count == 6)
        for (sentence, g) in golden {
            #expect(try tokenizer().encode(sentence).ids == g.ids, "\(sentence)")
        }
    }

    /// Cases whose expected ids come from HF `tokenizers` on the model's tokenizer.json
    /// (scripts/make_tokenizer_fixture.py): accents, punctuation runs, CJK, numbers, a
    /// 120-character word, empty and whitespace-only text, control characters, invalid UTF-8,
    /// pairs and longest-first truncation.
    @Test func referenceCases() throws {
        let cases = try JSONDecoder().decode([Case].self, from: Support.fixture("tokenizer-cases.json"))
        #expect(cases.count >= 20)
        let tok = try tokenizer()
        for c in cases {
            let enc: Encoding
            if let bytes = c.bytes {
                enc = tok.encode(bytes: bytes, maxLength: c.max_length)
            } else {
                enc = tok.encode(c.text!, pair: c.pair, maxLength: c.max_length)
            }
            let label = c.text.map { String($0.prefix(40)) } ?? "bytes \(c.bytes!)"
            #expect(enc.tokens == c.tokens, "\(label)")
            #expect(enc.ids == c.ids, "\(label)")
            #expect(enc.typeIds == c.type_ids, "\(label)")
        }
    }

    @Test func overlongWordIsUnknownButHundredCharsIsNot() throws {
        let tok = try tokenizer()
        #expect(tok.wordpiece(String(repeating: "x", count: 120)) == ["[UNK]"])
        #expect(tok.wordpiece(String(repeating: "x", count: 100)) != ["[UNK]"])
    }

    @Test func basicTokenizerRules() throws {
        let tok = try tokenizer()
        #expect(tok.basicTokenize("Héllo, WORLD!!") == ["hello", ",", "world", "!", "!"])
        #expect(tok.basicTokenize("中文") == ["中", "文"])
        #expect(tok.basicTokenize("a\u{0}b\u{7}c") == ["abc"])
        #expect(tok.basicTokenize(" \t\r\n ").isEmpty)
    }

    @Test func truncationKeepsSpecialTokens() throws {
        let tok = try tokenizer()
        let long = Array(repeating: "word", count: 600).joined(separator: " ")
        let enc = tok.encode(long, maxLength: 128)
        #expect(enc.ids.count == 128)
        #expect(enc.ids.first == tok.clsId && enc.ids.last == tok.sepId)
        let tiny = tok.encode("hello world", pair: "again", maxLength: 3)
        #expect(tiny.tokens == ["[CLS]", "[SEP]", "[SEP]"])
    }

    @Test func missingSpecialTokenIsAnError() {
        #expect(throws: ModelError.self) { try WordPieceTokenizer(vocabulary: ["[PAD]", "[CLS]", "[SEP]", "hello"]) }
    }
}
