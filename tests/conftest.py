"""Shared test assets: the packaged real MiniLM-L6-H384 BERT (uncased), small fixtures, and a random
BERT folder whose vocab holds every word of tests/fixtures/en_tiny whole."""
import contextlib
import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TINY = os.path.join(FIXTURES, "en_tiny")


@pytest.fixture(scope="session")
def minilm_dir():
    import experiments
    return experiments.minilm_folder()


@contextlib.contextmanager
def cpu_only():
    """Train on the CPU even where there is a GPU, in this process and in the processes it starts:
    for tests that compare two runs bit for bit, which only the CPU gives (CUDA's attention
    backward adds partial sums in whatever order its blocks finish)."""
    import bert
    if torch.cuda.is_available():  # CUDA up and its GPUs counted (torch keeps the count once
        torch.cuda.init()         # CUDA is up) while they are in view: counted under the empty
        torch.cuda.device_count()  # CUDA_VISIBLE_DEVICES below, this process would see none
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bert, "pick_device", lambda: torch.device("cpu"))
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        yield


def bert_folder(folder, layers, hidden, mlm=False, data=TINY):
    """Random BERT in Hub layout; vocab = the specials + every basic token of the splits in `data`
    (train.txt, valid.txt, test.txt; en_tiny by default), cased."""
    import bert
    import conll
    import wordpiece
    basic = wordpiece.WordPiece(list(wordpiece.SPECIALS), do_lower_case=False).basic
    words = {w for f in ("train.txt", "valid.txt", "test.txt")
             for s in conll.read_conll(os.path.join(data, f)) for w in s.words}
    vocab = list(wordpiece.SPECIALS) + sorted({t for w in words for t in basic(w)})
    torch.manual_seed(0)
    cfg = bert.BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=2, intermediate_size=2 * hidden,
                          max_position_embeddings=128)  # max_len 128 pieces
    bert.save_pretrained(bert.Bert(cfg, mlm=mlm), folder)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    return folder


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One saved run, for the tests that read one: 2 layers, H=32, BIO, lr 1e-3, batch 8, 3 epochs
    on en_tiny (~2 s), on the CPU -> (cfg, exp, its record). Tests may add runs to exp.out."""
    import experiments
    from finetune import FinetuneConfig
    tmp = tmp_path_factory.mktemp("run")
    folder = bert_folder(str(tmp / "bert"), layers=2, hidden=32)
    cfg = FinetuneConfig(model=folder, data=TINY, scheme="bio", lr=1e-3, batch_size=8, epochs=3)
    exp = experiments.Experiment(out=str(tmp / "runs"))
    with cpu_only():
        return cfg, exp, experiments.run_one(cfg, exp, log=lambda s: None)
