"""Writes the AdapterHub parity fixture into Tests/AdapterFusionTests/Fixtures/adapterhub/ with the
peer (PyTorch + AdapterHub `adapters` 1.x, in a venv; the Swift tests themselves need no Python):

  model/                       a tiny random BERT (2 layers, hidden 16, 2 heads, vocabulary 30)
  <name>/                      adapters saved by `save_adapter(..., use_safetensors=True)`, with heads
  logits.json                  inputs (token ids) and the peer's logits per adapter, in eval mode

`pfeiffer`: BnConfig(output_adapter=True, reduction_factor=2, relu) — AdapterHub's BnConfig defaults
(original_ln_before=False, original_ln_after=True, residual_before_ln=True) are afusion's placement.
`houlsby`: the same with mh_adapter=True (an adapter after attention too). `regress`: a one-output
regression head without the dense layer. `seq_bn`: AdapterHub's own "pfeiffer" (SeqBnConfig: the
adapter reads LN(h + x) — afusion's `original_ln_before`); `seq_bn_bin/` holds the same adapter
saved as PyTorch `.bin` files (the default of `save_adapter`). `fusion`: a dynamic Fuse of two more
output adapters (`fusion_a`, `fusion_b`) with its own head (`fusion_head`); `seqfusion`: the same
over two seq_bn adapters (`seqfusion_a`, `seqfusion_b`, head `seqfusion_head`), whose query reads
LN(h + x).

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install 'torch==2.13.0+cpu' adapters==1.2.0
    /tmp/peer/bin/python scripts/make_adapterhub_fixture.py
"""
import json, os
import torch
from transformers import BertConfig
from adapters import BertAdapterModel, BnConfig, SeqBnConfig

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "AdapterFusionTests", "Fixtures", "adapterhub")
torch.manual_seed(0)
cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=32, type_vocab_size=2)
model = BertAdapterModel(cfg)
model.bert.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
inputs = [[2, 5, 7, 9, 3], [2, 11, 3], [2, 4, 6, 8, 10, 12, 14, 3]]
logits = {}
for name, config, head in [
    ("pfeiffer", BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=2, non_linearity="relu"), "cls"),
    ("houlsby", BnConfig(mh_adapter=True, output_adapter=True, reduction_factor=4, non_linearity="relu"), "cls"),
    ("regress", BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=2, non_linearity="relu", leave_out=[0]), "reg"),
    ("seq_bn", SeqBnConfig(reduction_factor=2), "cls"),
]:
    model.add_adapter(name, config=config)
    if head == "cls":
        model.add_classification_head(name, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"})
    else:
        model.add_classification_head(name, num_labels=1, layers=1)  # one output, no dense layer: regression
    # Trained-looking weights: every adapter and head parameter random (up projections non-zero).
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f".{name}." in n:
                p.copy_(torch.randn_like(p) * 0.3)
    model.set_active_adapters(name)
    model.active_head = name
    model.eval()
    with torch.no_grad():
        logits[name] = [model(input_ids=torch.tensor([ids])).logits[0].tolist() for ids in inputs]
    model.save_adapter(os.path.join(out, name), name, use_safetensors=True)
    if name == "seq_bn":
        model.save_adapter(os.path.join(out, "seq_bn_bin"), name)
# A dynamic Fuse of two fresh output adapters, with its own head: fusion/ holds the fusion
# (save_adapter_fusion), fusion_a/ and fusion_b/ the members, fusion_head/ the head (save_head).
from adapters.composition import Fuse
for prefix, config in [("fusion", BnConfig(mh_adapter=False, output_adapter=True, reduction_factor=2, non_linearity="relu")),
                       ("seqfusion", SeqBnConfig(reduction_factor=2))]:
    a, b, head = prefix + "_a", prefix + "_b", prefix + "_head"
    for name in [a, b]:
        model.add_adapter(name, config=config)
        model.add_classification_head(name, num_labels=2)
    fuse = Fuse(a, b)
    model.add_adapter_fusion(fuse, config="dynamic")
    model.add_classification_head(head, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"})
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f".{a}." in n or f".{b}." in n or f"{a},{b}" in n or f".{head}." in n:
                p.copy_(torch.randn_like(p) * 0.3)
    model.set_active_adapters(fuse)
    model.active_head = head
    model.eval()
    with torch.no_grad():
        logits[prefix] = [model(input_ids=torch.tensor([ids])).logits[0].tolist() for ids in inputs]
    model.save_adapter(os.path.join(out, a), a, use_safetensors=True)
    model.save_adapter(os.path.join(out, b), b, use_safetensors=True)
    model.save_adapter_fusion(os.path.join(out, prefix), f"{a},{b}", use_safetensors=True)
    model.save_head(os.path.join(out, head), head, use_safetensors=True)
json.dump({"inputs": inputs, "logits": logits}, open(os.path.join(out, "logits.json"), "w"), indent=1)
print("wrote", out)
