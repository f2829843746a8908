"""Time conlleval.evaluate against seqeval on the CoNLL-2003 English test set.

The guess is the gold tags with 5% of the words given another tag (seed 0), so that
there are errors of every kind to count. Prints both timings, the ratio, and both F1s
(which must agree: seqeval's default mode follows conlleval.pl on IOB1).

    .venv/bin/python bench/bench_conlleval.py [--data=/path/test.txt] [--repeat=5]
"""
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import conlleval  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "conll2003-en", "test.txt")  # or --data=PATH


def read_tags(path):
    """Sentences of gold tags (last column). -DOCSTART- stays a one-word sentence, which
    is how conlleval.pl sees it in a file: a token tagged O, followed by a blank line."""
    sents, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.split()
            if cols:
                cur.append(cols[-1])
            elif cur:
                sents.append(cur)
                cur = []
    if cur:
        sents.append(cur)
    return sents


def perturb(sents, rate=0.05, seed=0):
    """Each word's tag becomes another tag of the corpus with probability `rate`."""
    rng = random.Random(seed)
    tags = sorted({t for s in sents for t in s})
    return [[rng.choice([x for x in tags if x != t]) if rng.random() < rate else t for t in s]
            for s in sents]


def best_time(fn, repeat):
    # best of `repeat` runs: the machine is shared, the minimum is the least disturbed
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    path, repeat = args.get("data", DATA), int(args.get("repeat", 5))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: CoNLL-2003 test file not found; pass --data=PATH")
    gold = read_tags(path)
    pred = perturb(gold)
    n_words = sum(map(len, gold))
    ours_s, ours = best_time(lambda: conlleval.evaluate(gold, pred), repeat)
    # The command-line path: the same tags as "word gold guess" lines, blank line per sentence
    lines = [l for g, p in zip(gold, pred) for l in [f"w {a} {b}" for a, b in zip(g, p)] + [""]]
    cli_s, cli = best_time(lambda: conlleval.report(conlleval.scan(conlleval.read_rows(lines))),
                           repeat)
    # seqeval's classification_report gives what evaluate gives: overall and per-type P/R/F1
    from seqeval.metrics import classification_report
    seq_s, seq = best_time(lambda: classification_report(gold, pred, output_dict=True), repeat)
    print(f"{path}: {len(gold)} sentences, {n_words} words, guess = gold with 5% tags changed")
    print(f"conlleval.evaluate     {ours_s * 1000:8.1f} ms   F1 {ours['f1']:.4f}")
    print(f"conlleval file path    {cli_s * 1000:8.1f} ms   (read_rows + scan + report)")
    seq_f1 = 100 * seq["micro avg"]["f1-score"]
    print(f"seqeval report         {seq_s * 1000:8.1f} ms   F1 {seq_f1:.4f}")
    print(f"seqeval / ours: {seq_s / ours_s:.1f}x   (best of {repeat})")
    print(cli, end="")


if __name__ == "__main__":
    main()
