#!/usr/bin/env python3
"""PEFT parity on the real model: a LoRA adapter trained by afusion, exported with
`afusion export peft`, loaded by Hugging Face PEFT onto all-MiniLM-L6-v2 (BertModel); the
mean-pooled, L2-normalised embeddings of a few sentences must match `afusion embed --adapter`.
Needs the peer's venv with peft (`pip install peft accelerate`).
Usage: check_peft_parity.py STORE ADAPTER [MODEL_DIR]"""
import json, subprocess, sys, tempfile
import torch
from transformers import AutoTokenizer, BertModel
from peft import PeftModel

store, adapter = sys.argv[1], sys.argv[2]
model_dir = sys.argv[3] if len(sys.argv) > 3 else "models/all-MiniLM-L6-v2"
af = ".build/release/afusion"
sentences = ["Who wrote Hamlet?", "How far is the moon from the earth?", "What a wonderful, moving film.",
             "WINNER! Claim your prize now by calling 0800 123 456.", "The meeting is at noon."]
out = tempfile.mkdtemp()
subprocess.run([af, "export", "peft", out, "--store", store, "--adapter", adapter], check=True)
ours = [json.loads(l)["embedding"] for l in subprocess.run(
    [af, "embed", "--json", "--store", store, "--adapter", adapter, "--model", model_dir] + sentences,
    check=True, capture_output=True, text=True).stdout.splitlines()]
tok = AutoTokenizer.from_pretrained(model_dir)
base = BertModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
bare = None
with torch.no_grad():
    enc = tok(sentences, padding=True, return_tensors="pt")
    def pooled(m):
        h = m(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        v = (h * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(v, dim=-1)
    bare = pooled(base)
    peft_model = PeftModel.from_pretrained(base, out).eval()
    theirs = pooled(peft_model)
ours = torch.tensor(ours)
print(f"max |ours - PEFT| = {(ours - theirs).abs().max().item():.2e}; "
      f"max |PEFT - bare model| = {(theirs - bare).abs().max().item():.2e} (the adapter changes the output)")
assert (ours - theirs).abs().max().item() < 1e-4
