"""Writes Tests/AdapterFusionTests/Fixtures/tokenizer-cases.json: expected ids from HF `tokenizers`
(the reference implementation of the model's tokenizer.json). A developer tool, not used by the tests:
    python3 -m venv /tmp/tok && /tmp/tok/bin/pip install tokenizers
    /tmp/tok/bin/python scripts/make_tokenizer_fixture.py models/all-MiniLM-L6-v2/tokenizer.json
"""
import json, sys
from tokenizers import Tokenizer

CASES = [
    {"text": "Héllo wörld!"},
    {"text": "naïve café RÉSUMÉ, Ångström"},
    {"text": "Wait... what?!? (really)--yes;"},
    {"text": "你好世界 and 日本語テキスト mixed中文text"},
    {"text": "The price is $1,234.56 (approx. 3.5%) in 2024"},
    {"text": "x" * 120},
    {"text": "y" * 100 + " short"},
    {"text": ""},
    {"text": "   \t\n  "},
    {"text": "control\u0000chars\u0007here\u200bzero\u00adsoft"},
    {"text": "unaffable antidisestablishmentarianism"},
    {"text": "Don't stop-believing, e-mail me@example.com"},
    {"text": "emoji 😀 test ☃ snow"},
    {"text": "non\u00a0breaking\u2009thin\u3000ideographic"},
    {"text": "tab\tseparated\r\nlines"},
    {"text": "ǅ ß ﬁ Ⅻ ①"},
    {"bytes": list(b"caf\xc3 ok\xff end")},
    {"text": "How old are you?", "pair": "I am six years old."},
    {"text": "a b c d e f g h i j", "pair": "k l m", "max_length": 10},
    {"text": "a b c", "pair": "d e f g h i j k l m", "max_length": 9},
    {"text": "one two three four five six seven", "max_length": 5},
]

tok = Tokenizer.from_file(sys.argv[1])
tok.no_padding()
out = []
for case in CASES:
    text = bytes(case["bytes"]).decode("utf-8", errors="replace") if "bytes" in case else case["text"]
    if "max_length" in case:
        tok.enable_truncation(case["max_length"], strategy="longest_first")
    else:
        tok.no_truncation()
    enc = tok.encode(text, case["pair"]) if "pair" in case else tok.encode(text)
    out.append({**case, "ids": enc.ids, "type_ids": enc.type_ids, "tokens": enc.tokens})
json.dump(out, open("Tests/AdapterFusionTests/Fixtures/tokenizer-cases.json", "w"), ensure_ascii=False, indent=1)
print(f"{len(out)} cases")
