"""Time one training step (forward + backward) of our TokenClassifier vs HF's
BertForTokenClassification on the same weights, same batch, same device, in one run, and print the
ratio HF/ours (> 1: we are faster).

    python bench/bench_model.py                 # packaged MiniLM-L6-H384 (real weights)
    python bench/bench_model.py --model=DIR     # any BERT folder or Hub id,
                                                # e.g. bert-base-multilingual-cased
    python bench/bench_model.py --mbert-shape   # random-init mBERT shape (12 x 768, vocab 119547)
"""
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bert  # noqa: E402
from experiments import minilm_folder  # noqa: E402




def models(folder, labels, device):
    import transformers
    ref = transformers.BertForTokenClassification.from_pretrained(folder, num_labels=labels)
    ours = bert.TokenClassifier(bert.from_pretrained(folder), labels)
    ours.out.load_state_dict(ref.classifier.state_dict())  # same classifier weights too
    return ours.to(device).train(), ref.to(device).train()


def step(model, ids, mask, labels, hf):
    if hf:
        logits = model(input_ids=ids, attention_mask=mask).logits
    else:
        logits = model(ids, mask)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                             ignore_index=-100)
    loss.backward()
    model.zero_grad(set_to_none=True)


def time_steps(model, batch, hf, device, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with bert.autocast(device):
            step(model, *batch, hf)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def main():
    args = dict(a.lstrip("-").split("=", 1) if "=" in a else (a.lstrip("-"), "1")
                for a in sys.argv[1:])
    device = bert.pick_device()
    B, T, steps = int(args.get("batch", 16)), int(args.get("len", 48)), int(args.get("steps", 10))
    if "mbert-shape" in args:
        import transformers
        folder = tempfile.mkdtemp()
        config = transformers.BertConfig(vocab_size=119547)
        transformers.BertForMaskedLM(config).save_pretrained(folder)
    else:
        folder = args.get("model", minilm_folder())
    ours, ref = models(folder, 9, device)
    V = ours.bert.cfg.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, V, (B, T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    # ragged batch, like padded CoNLL sentences
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    labels = torch.randint(0, 9, (B, T), generator=g).masked_fill(mask == 0, -100)
    batch = [x.to(device) for x in (ids, mask, labels)]
    for m, hf in ((ours, False), (ref, True)):  # warm-up
        time_steps(m, batch, hf, device, 2)
    ratios, t_ours, t_ref = [], [], []
    for _ in range(steps):  # interleave so drift on a shared machine hits both alike
        a = time_steps(ours, batch, False, device, 1)[0]
        b = time_steps(ref, batch, True, device, 1)[0]
        t_ours.append(a), t_ref.append(b), ratios.append(b / a)
    print(f"device {device}, batch {B} x {T}, model {folder}, {steps} steps each, "
          f"torch {torch.__version__}")
    print(f"ours  train step: median {statistics.median(t_ours) * 1e3:8.1f} ms")
    print(f"HF    train step: median {statistics.median(t_ref) * 1e3:8.1f} ms")
    print(f"ratio HF/ours (median of pairs): {statistics.median(ratios):.3f}  "
          "(> 1 means ours is faster)")


if __name__ == "__main__":
    main()
