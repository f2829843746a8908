"""Real-weights check: fine-tune the packaged MiniLM-L6-H384 on the first N sentences of CoNLL-2003
English with our stack (finetune.train: our BERT, our AdamW, our schedule) and with HF's
BertForTokenClassification + torch.optim.AdamW, on the same windows, the same batches in the same
order and the same learning rates (finetune.lr_factor through torch's LambdaLR), on one machine in
one run; print dev F1 (conlleval) and training time of each, and the time ratio. Ours runs with
bias_correction=True, the same update as torch.optim.AdamW, so only model and optimizer code differ.

    python bench/compare_hf_finetune.py [--data DIR] [--sentences 2000] [--epochs 3] [--lr 1e-4]
                                        [--seeds 1,2,3] [--graphs false|true|both] [--hf false]

`--graphs both --hf false --seeds 1,2,3 --sentences 14041` is the check that the CUDA-graph path
learns as well as the eager one: their mean dev F1 within 0.3.
"""
import argparse
import math
import os
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import bert  # noqa: E402
import corpora  # noqa: E402
import experiments  # noqa: E402
import fastfit  # noqa: E402
import finetune  # noqa: E402
from wordpiece import WordPiece  # noqa: E402


class HFTagger(torch.nn.Module):
    """HF's BertForTokenClassification called as ours: model(ids, mask) -> logits."""

    def __init__(self, folder, labels):
        super().__init__()
        import transformers
        self.m = transformers.BertForTokenClassification.from_pretrained(folder, num_labels=labels)

    def forward(self, ids, mask):
        return self.m(input_ids=ids, attention_mask=mask).logits


def hf_fit(model, cfg, data, plan):
    """HF's usual loop on finetune's batches: torch AdamW, LambdaLR, clip, zero_grad. -> seconds."""
    named = list(model.m.named_parameters())
    plain = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=cfg.weight_decay),
                             dict(params=plain, weight_decay=0.0)], lr=cfg.lr, eps=cfg.eps)
    total = sum(map(len, plan))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: finetune.lr_factor(t, total, cfg.warmup, cfg.schedule, cfg.stlr_ratio))
    device = data.ids.device
    lengths = data.lengths.tolist()
    t0 = time.time()
    for epoch in plan:
        model.train()
        for idx in epoch:
            rows = torch.tensor(idx, device=device)
            ids, mask, y = finetune.batch_of(data, rows, max(lengths[i] for i in idx))
            with bert.autocast(device):
                logits = model(ids, mask)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-100)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.time() - t0


def hf_run(cfg):
    """The same run with HF's model -> (dev F1, training seconds)."""
    torch.manual_seed(cfg.seed)
    device = bert.pick_device()
    tok = WordPiece.from_pretrained(cfg.model)
    data, labels = corpora.read_splits(cfg, tok)
    model = HFTagger(cfg.model, len(labels)).to(device)
    feats = data["train"].feats
    seconds = hf_fit(model, cfg, finetune.tensorize(feats, tok, device),
                     finetune.batch_plan(feats, cfg, cfg.epochs))
    dev = finetune.tensorize(data["dev"].feats, tok, device)
    f1 = finetune.evaluate(model, data["dev"], dev, labels, 64)[0]["f1"]
    return f1, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "conll2003-en"))
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seeds", default="1", help="comma-separated, e.g. 1,2,3")
    ap.add_argument("--graphs", default="false", choices=("false", "true", "both"),
                    help="ours eager, from CUDA graphs, or both (the fast path against the eager)")
    ap.add_argument("--hf", type=experiments.typed(bool, "hf"), default=True,
                    help="also run HF's loop")
    a = ap.parse_args()
    modes = {"false": [False], "true": [True], "both": [False, True]}[a.graphs]
    device = bert.pick_device()
    f1 = {mode: [] for mode in [*modes, "hf"]}
    base = finetune.FinetuneConfig(
        model=experiments.minilm_folder(), data=a.data, scheme="bio", lr=a.lr, batch_size=16,
        epochs=a.epochs, max_train_sentences=a.sentences, bias_correction=True)
    if device.type == "cuda":  # untimed: CUDA's start-up would otherwise fall on the first run
        warm = replace(base, epochs=1, max_train_sentences=min(a.sentences, 64))
        finetune.train(warm, fit=fastfit.fit, log=lambda s: None)
        if a.hf:
            hf_run(warm)
    for seed in map(int, a.seeds.split(",")):
        cfg = replace(base, seed=seed)
        print(f"MiniLM-L6-H384, {cfg.max_train_sentences} train sentences, {cfg.epochs} epochs, "
              f"BIO, bs {cfg.batch_size}, lr {cfg.lr}, warmup {cfg.warmup}, seed {seed}, "
              f"device {device}, torch {torch.__version__}")
        for graphs in modes:
            t = time.time()
            fit = fastfit.fit if graphs and device.type == "cuda" else finetune.fit
            run = finetune.train(cfg, fit=fit, log=lambda s: None)
            f1[graphs].append(run.dev["f1"])
            print(f"ours (graphs {graphs}): dev F1 {run.dev['f1']:.2f}  "
                  f"train {run.stats['train_s']:.1f} s  total {time.time() - t:.0f} s")
        if a.hf:
            t = time.time()
            hf_f1, hf_train = hf_run(cfg)
            f1["hf"].append(hf_f1)
            ratio = hf_train / (run.stats["train_s"] or math.nan)  # nan: too short to time
            print(f"HF:   dev F1 {hf_f1:.2f}  train {hf_train:.1f} s  total {time.time() - t:.0f} s"
                  f"  train-time ratio HF/ours (graphs {graphs}) {ratio:.2f} (> 1: ours "
                  f"is faster)")
    mean = {k: sum(v) / len(v) for k, v in f1.items() if v}
    print("mean dev F1: " + ", ".join(f"{k if k == 'hf' else 'graphs ' + str(k)} {v:.2f}"
                                    for k, v in mean.items()))
    if a.graphs == "both":
        gap = abs(mean[True] - mean[False])
        note = "" if device.type == "cuda" else " (no CUDA here: both ran eagerly)"
        print(f"fast path vs eager: |mean dev F1 difference| {gap:.2f} "
              f"({'within' if gap <= 0.3 else 'OUTSIDE'} the 0.3 target){note}")


if __name__ == "__main__":
    main()
