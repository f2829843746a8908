"""Time one optimizer step over a whole BERT token classifier's parameters, in one run on one
device: ours (finetune.AdamW, one fused kernel per group, each lr a device tensor), our
per-tensor reference (adamw_update tensor by tensor), and torch.optim.AdamW as HF's loop runs it
(its default multi-tensor path) and fused; the ratio of each to ours (> 1: ours is faster).

    python bench/bench_adamw.py                 # packaged MiniLM-L6-H384 (22M parameters)
    python bench/bench_adamw.py --mbert-shape   # mBERT's shape: 12 x 768, vocab 119,547 (178M)

--used-rows N adds ours over a model whose word embeddings hold N rows, as fastfit.UnusedRows
trains them (15312: the mBERT pieces CoNLL-2003 English's training windows use, [CLS], [SEP]
and [PAD] among them).
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bert  # noqa: E402
import finetune  # noqa: E402
from experiments import minilm_folder  # noqa: E402


def model(mbert_shape, device, rows=0):
    torch.manual_seed(0)
    enc = bert.Bert(bert.BertConfig()) if mbert_shape else bert.from_pretrained(minilm_folder())
    m = bert.TokenClassifier(enc, 9).to(device)
    if rows:  # only the rows in use, as fastfit.UnusedRows sets them aside
        m.bert.emb.word.weight.data = m.bert.emb.word.weight.data[:rows].clone()
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return m


def timed(step, device, n):
    """Median seconds of n calls, after 2 warm-up calls (state allocation, kernel setup)."""
    for _ in range(2):
        step()
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mbert-shape", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--used-rows", type=int, default=0, help="also ours with N word rows")
    a = ap.parse_args()
    device = bert.pick_device()
    m = model(a.mbert_shape, device)
    groups = finetune.param_groups(m, 3e-5, 1.0, 0.01)  # BERT's decay / no-decay groups

    def plain():  # a fresh list for each optimizer: it writes its defaults into the group dicts
        return [dict(params=g["params"], weight_decay=g["weight_decay"]) for g in groups]
    ours = finetune.AdamW(groups, lr=3e-5)
    reference = finetune.AdamW(plain(), lr=3e-5, fused=False)
    for g in ours.param_groups:  # as fastfit sets them: the rate a tensor on the device
        g["lr"] = torch.tensor(g["lr"] * 0.5, device=device)
    torch_default = torch.optim.AdamW(plain(), lr=3e-5, eps=1e-6)
    torch_fused = torch.optim.AdamW(plain(), lr=3e-5, eps=1e-6, fused=True)
    t = {"ours (fused, BertAdam)": timed(ours.step, device, a.steps),
         "ours, per-tensor reference": timed(reference.step, device, a.steps),
         "torch.optim.AdamW (default)": timed(torch_default.step, device, a.steps),
         "torch.optim.AdamW (fused)": timed(torch_fused.step, device, a.steps)}
    if a.used_rows:
        part = model(a.mbert_shape, device, a.used_rows)
        n_part = sum(p.numel() for p in part.parameters()) / 1e6
        fewer = finetune.AdamW(finetune.param_groups(part, 3e-5, 1.0, 0.01), lr=3e-5)
        t[f"ours, {a.used_rows} word rows ({n_part:.0f}M)"] = timed(fewer.step, device, a.steps)
    n = sum(p.numel() for p in m.parameters())
    print(f"device {device}, torch {torch.__version__}, {n / 1e6:.1f}M parameters in "
          f"{len(groups)} groups, median of {a.steps} steps")
    first = next(iter(t.values()))
    for name, s in t.items():
        print(f"{name:30s} {s * 1e3:8.1f} ms   this/ours {s / first:5.2f}")


if __name__ == "__main__":
    main()
