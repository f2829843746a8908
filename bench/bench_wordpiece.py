"""Word-level WordPiece on CoNLL-2003 train: ours vs HF's Python and Rust BertTokenizers.

The NER job: every word (CoNLL token) of every sentence -> its piece ids. Ours starts from a
fresh instance, so its per-word cache is cold and fills during the run. HF's Python tokenizer
encodes word by word (tokenize + convert_tokens_to_ids); the Rust one gets all sentences in one
batched is_split_into_words call and its word_ids are grouped back into per-word lists.
The Rust one is also timed without the regrouping, and called sentence by sentence. Each time
is the best of 3 runs. All three answers are compared; words whose pieces differ are counted.

    python bench/bench_wordpiece.py [--data=PATH/train.txt] [--model=DIR_OR_HUB_ID]
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from experiments import minilm_folder  # noqa: E402
from wordpiece import WordPiece  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "conll2003-en", "train.txt")
REPEAT = 3




def read_sentences(path):
    """First column of a CoNLL file, one list of words per sentence; -DOCSTART- lines skipped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file; pass --data=PATH/train.txt "
                                "(CoNLL-2003 English)")
    sents, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if cur:
                    sents.append(cur)
                cur = []
            else:
                cur.append(cols[0])
    return sents + [cur] * bool(cur)


def best_of(runs, fn):
    """fn(run) for each run; its output and the fastest time (the CPU is shared, so take the
    min)."""
    times = []
    for r in runs:
        t = time.perf_counter()
        out = fn(r)
        times.append(time.perf_counter() - t)
    return out, min(times)


def rust_word_ids(fast, sents):
    """One batched call, then regroup each sentence's ids by word (words with no piece get [])."""
    enc = fast(sents, is_split_into_words=True, add_special_tokens=False)
    out = []
    for b, words in enumerate(sents):
        per = [[] for _ in words]
        for i, w in zip(enc["input_ids"][b], enc.word_ids(b)):
            per[w].append(i)
        out.append(per)
    return out


def main(argv):
    opts = dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)
    unknown = [a for a in argv[1:] if not a.startswith(("--data=", "--model="))]
    if unknown:
        sys.exit(f"unknown arguments {unknown}; "
                 "usage: bench_wordpiece.py [--data=PATH] [--model=DIR]")
    model, data = opts.get("model") or minilm_folder(), opts.get("data") or DATA
    import transformers  # test-only reference, never imported by the top-level files
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    sents = read_sentences(data)
    words = [w for s in sents for w in s]
    print(f"{data}: {len(sents)} sentences, {len(words)} words, {len(set(words))} distinct; "
          f"model {model}")
    wp = WordPiece.from_pretrained(model)
    slow = BertTokenizerLegacy.from_pretrained(model)
    fast = transformers.BertTokenizer.from_pretrained(model)
    assert slow.do_lower_case == fast.do_lower_case == wp.lower, (
        "the three tokenizers read different casings")

    fresh = [WordPiece.from_pretrained(model) for _ in range(REPEAT)]  # each with a cold cache
    ours, t_ours = best_of(fresh, lambda wp: [wp.encode_words(s) for s in sents])
    _, t_warm = best_of(fresh, lambda wp: [wp.encode_words(s) for s in sents])
    per_word = lambda w: slow.convert_tokens_to_ids(slow.tokenize(w))  # noqa: E731
    ref_slow, t_slow = best_of(range(REPEAT), lambda _: [[per_word(w) for w in s] for s in sents])
    ref_fast, t_fast = best_of(range(REPEAT), lambda _: rust_word_ids(fast, sents))
    _, t_call = best_of(range(REPEAT),
                        lambda _: fast(sents, is_split_into_words=True, add_special_tokens=False))
    _, t_each = best_of(range(REPEAT),
                        lambda _: [fast(s, is_split_into_words=True, add_special_tokens=False)
                                   for s in sents])

    print(f"best of {REPEAT} runs")
    for what, t in (("ours, cold cache", t_ours), ("ours, warm cache", t_warm),
                    ("HF Python, word by word", t_slow), ("HF Rust, one batch", t_fast),
                    ("  (the call alone)", t_call), ("HF Rust, sentence by sentence", t_each)):
        print(f"{what:30s} {t:7.3f} s   {t / t_ours:5.2f}x ours (cold)")
    flat = [x for s in ours for x in s]
    diff_slow = sum(a != b for a, b in zip(flat, (x for s in ref_slow for x in s)))
    diff_fast = sum(a != b for a, b in zip(flat, (x for s in ref_fast for x in s)))
    print(f"words whose pieces differ: vs Python {diff_slow}, vs Rust {diff_fast} "
          f"(Rust drops zero-piece words that ours keeps as [UNK])")

if __name__ == "__main__":
    main(sys.argv)
