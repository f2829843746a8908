"""finetune.py: the optimizer, schedules, Eq. (1) and gradual unfreezing (paper Sec 3.3, 4.1), and the
train / run_once / grid / table / predict workflow, on the CPU in seconds.

References: torch.optim.AdamW (the bias-corrected update), google-research/bert optimization.py written
out by hand (BertAdam), ULMFiT Eq. (3) and the paper's Eq. (1) worked by hand. The end-to-end runs use a
random 2-layer BERT whose vocab holds every word of tests/fixtures/en_tiny whole, so they need no download.
"""
import copy
import io
import json
import math
import os
import re
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bert
import conll
import conlleval
import finetune
import wordpiece
from conftest import FIXTURES
from finetune import FinetuneConfig

TINY = os.path.join(FIXTURES, "en_tiny")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every model here is tiny (H <= 32): on a shared 2-core machine, handing such small matmuls
    between threads costs far more than the math (a 3 ms training step took 700 ms with 2 threads
    while another job ran). One thread for this module, the old setting restored after it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_classifier(layers=2, hidden=8, mlm=False, seed=0):
    """Random TokenClassifier (A=2, vocab 30, 5 labels), dropout off so copies compute alike."""
    torch.manual_seed(seed)
    cfg = bert.BertConfig(vocab_size=30, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                          intermediate_size=2 * hidden, max_position_embeddings=16,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return bert.TokenClassifier(bert.Bert(cfg, mlm=mlm), 5)


def run_steps(model, opt, gen, steps):
    """`steps` updates on random batches drawn from `gen`: same generator state, same batches."""
    for _ in range(steps):
        ids = torch.randint(0, 30, (4, 12), generator=gen)
        y = torch.randint(0, 5, (4, 12), generator=gen)
        F.cross_entropy(model(ids).flatten(0, 1), y.flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def ours(model, cfg, bias_correction):
    return finetune.AdamW(finetune.param_groups(model, cfg), lr=cfg.lr, eps=cfg.eps,
                          weight_decay=cfg.weight_decay, bias_correction=bias_correction)


# ---------------------------------------------------------------------------------------------
# The optimizer.

@pytest.mark.parametrize("delta", [1.0, 2.6])
def test_adamw_with_bias_correction_equals_torch(delta):
    """bias_correction=True is torch.optim.AdamW: same start, same 100 random batches, the same
    decay / no-decay groups (and for delta=2.6, L=3, Eq. 1's 4 rates: eta0 for the classifier and
    layer 2, eta0/2.6 layer 1, eta0/2.6^2 layer 0, eta0/2.6^3 embeddings) -> every parameter
    within 1e-6 of torch's, relative to its largest entry."""
    cfg = FinetuneConfig(lr=1e-3, delta=delta)  # a high lr so that 100 steps move the weights far
    model = tiny_classifier(layers=3)
    ref, start = copy.deepcopy(model), copy.deepcopy(model)
    opt = ours(model, cfg, bias_correction=True)
    ref_opt = torch.optim.AdamW(finetune.param_groups(ref, cfg), lr=cfg.lr, betas=(0.9, 0.999), eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
    assert len({g["lr"] for g in ref_opt.param_groups}) == (1 if delta == 1.0 else 4)
    run_steps(model, opt, torch.Generator().manual_seed(0), 100)
    run_steps(ref, ref_opt, torch.Generator().manual_seed(0), 100)
    for (n, p), q, p0 in zip(model.named_parameters(), ref.parameters(), start.parameters()):
        assert (p - q).abs().max() <= 1e-6 * q.abs().max(), n
        assert not torch.equal(p0, q), f"{n} never moved: the comparison would prove nothing"


def test_bertadam_equals_hand_update():
    """bias_correction=False is google-research/bert optimization.py (AdamWeightDecayOptimizer),
    written out here in float64 for 3 steps:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p = p - lr (m / (sqrt(v) + eps) + wd p)
    with no 1 - b^t corrections. So step 1 (m = v = 0) moves a weight whose |g| >> eps by
    lr (0.1 / sqrt(0.001) + wd p) = lr (sqrt(10) + wd p), 3.16 lr, where corrected Adam moves it lr."""
    lr, wd, eps, b1, b2 = 0.1, 0.01, 1e-6, 0.9, 0.999
    p0 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    grads = torch.tensor([[0.3, -0.2, 1e-3], [-0.1, 0.4, 0.0], [0.2, 0.2, -5.0]], dtype=torch.float64)
    p = nn.Parameter(p0.clone())
    opt = finetune.AdamW([p], lr=lr, eps=eps, weight_decay=wd)  # BERT's betas and eps are the defaults
    want, m, v = p0.clone(), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for t, g in enumerate(grads):
        p.grad = g.clone()
        opt.step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        want = want - lr * (m / (v.sqrt() + eps) + wd * want)
        torch.testing.assert_close(p.detach(), want, rtol=1e-14, atol=0, msg=f"step {t + 1}")
        if t == 0:
            moved = (p0 - p.detach()) / lr - wd * p0  # eps costs 0.01%; g[2] = 1e-3 is not >> eps: 3% short
            torch.testing.assert_close(moved[:2], math.sqrt(10) * g[:2].sign(), rtol=1e-3, atol=0)


def test_weight_decay_skips_biases_and_layernorm():
    """Decay falls on weight matrices (Linear, Embedding) only; every bias and both LayerNorm
    parameters get weight_decay 0 (BERT optimization.py's exclude_from_weight_decay). Each
    parameter is in exactly one group. Judged by module type, not by the names param_groups reads."""
    model = tiny_classifier(layers=2, mlm=True)
    groups = finetune.param_groups(model, FinetuneConfig(weight_decay=0.01))
    wd = [(id(p), g["weight_decay"]) for g in groups for p in g["params"]]
    assert len(wd) == len(dict(wd)) == len(list(model.parameters())), "a parameter in no group or in two"
    wd = dict(wd)
    for name, mod in model.named_modules():
        for n, p in mod.named_parameters(recurse=False):
            want = 0.0 if isinstance(mod, nn.LayerNorm) or n == "bias" else 0.01
            assert wd[id(p)] == want, f"{name}.{n}: weight_decay {wd[id(p)]}, want {want}"


def test_step_leaves_gradless_param_alone():
    """In one group, `a` has a grad and `b` none (frozen): b gets no decay, no step, no state, while
    a = 1 (1 - lr wd) - lr 0.1 / (sqrt(0.001) + eps) = 0.95 - 0.1 * 3.16218 = 0.633782 (BertAdam).
    When b gets a grad later its step count starts at 1: a tensor thawed late has its own count."""
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = finetune.AdamW([a, b], lr=0.1, weight_decay=0.5)
    a.grad = torch.ones(3)
    opt.step()
    torch.testing.assert_close(a.detach(), torch.full((3,), 0.95 - 0.1 * 0.1 / (math.sqrt(1e-3) + 1e-6)))
    assert torch.equal(b.detach(), torch.ones(3)) and b not in opt.state
    b.grad = torch.ones(3)
    opt.step()
    assert (opt.state[a]["step"], opt.state[b]["step"]) == (2, 1)


@pytest.mark.parametrize("bias_correction", [False, True])
def test_optimizer_state_dict_round_trip(bias_correction):
    """10 steps straight == 5 steps, model and optimizer saved (torch.save), loaded into a fresh
    model and optimizer, 5 more steps on the same batches: bit for bit."""
    cfg = FinetuneConfig(lr=1e-3, delta=2.6)
    straight = tiny_classifier()
    resumed = copy.deepcopy(straight)
    run_steps(straight, ours(straight, cfg, bias_correction), torch.Generator().manual_seed(0), 10)
    gen = torch.Generator().manual_seed(0)
    opt = ours(resumed, cfg, bias_correction)
    run_steps(resumed, opt, gen, 5)
    buf = io.BytesIO()
    torch.save(dict(model=resumed.state_dict(), opt=opt.state_dict()), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    fresh = tiny_classifier(seed=1)
    fresh.load_state_dict(saved["model"])
    fresh_opt = ours(fresh, replace(cfg, lr=0.5), not bias_correction)  # both come back from the state
    fresh_opt.load_state_dict(saved["opt"])
    run_steps(fresh, fresh_opt, gen, 5)
    for (n, p), q in zip(fresh.named_parameters(), straight.parameters()):
        assert torch.equal(p, q), n


# ---------------------------------------------------------------------------------------------
# Schedules, Eq. (1), gradual unfreezing.

# total = 100 updates, warmup / cut_frac 0.1 -> cut = 10. linear (BERT's warmup_linear / polynomial_decay):
# step/10 up to 10, then 1 - step/100: 0.9 at step 10, 0.45 at 55, 0.01 at 99.
# stlr, ULMFiT Eq. (3) with ratio 32: p = t/10 before the cut, 1 - (t - 10)/90 after it;
# lr = (1 + 31 p) / 32, so p = 0 -> 1/32, p = 1/2 -> 16.5/32, p = 1/90 (step 99) -> (1 + 31/90)/32.
@pytest.mark.parametrize("schedule, step, want", [
    ("linear", 0, 0.0), ("linear", 5, 0.5), ("linear", 10, 0.9), ("linear", 55, 0.45), ("linear", 99, 0.01),
    ("stlr", 0, 1 / 32), ("stlr", 5, 16.5 / 32), ("stlr", 10, 1.0), ("stlr", 55, 16.5 / 32),
    ("stlr", 99, (1 + 31 / 90) / 32),
    ("constant", 0, 1.0), ("constant", 55, 1.0), ("constant", 99, 1.0)])
def test_lr_factor_by_hand(schedule, step, want):
    cfg = FinetuneConfig(schedule=schedule, warmup=0.1, stlr_ratio=32.0)
    assert finetune.lr_factor(step, 100, cfg) == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("mlm", [False, True], ids=["no-mlm-head", "mlm-head"])
def test_discriminative_lr_every_group(mlm):
    """Eq. (1), delta = 2.6, L = 12: the classifier and layer 11 get eta0, layer 11 - k gets
    eta0 / 2.6^k, the embeddings eta0 / 2.6^12 (= eta0 / 96,717). The word embedding matrix is an
    embedding even when a checkpoint's MLM head (mBERT has one) is tied to it; the unused MLM head's
    own parameters sit with the classifier. Every group and every parameter is checked."""
    eta0 = 1e-3
    model = tiny_classifier(layers=12, mlm=mlm)
    groups = finetune.param_groups(model, FinetuneConfig(lr=eta0, delta=2.6))
    assert sorted(g["depth"] for g in groups) == [d for d in range(14) for _ in range(2)]  # decay, no-decay per unit
    for g in groups:
        assert g["lr"] == g["base_lr"] == pytest.approx(eta0 / 2.6 ** max(0, g["depth"] - 1), rel=1e-12)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    for n, p in model.named_parameters():  # the tied matrix is named once, as bert.emb.word.weight
        m = re.match(r"bert\.layers\.(\d+)\.", n)
        want = eta0 / 2.6 ** (11 - int(m[1])) if m else eta0 / 2.6 ** 12 if n.startswith("bert.emb.") else eta0
        assert lr[id(p)] == pytest.approx(want, rel=1e-12), (
            f"{n}: lr {lr[id(p)]:.3g}, want {want:.3g}" + (" (the tied word embeddings took the MLM head's "
                                                           "rate: param_groups lets the head own them)" * mlm))


# Hand-derived plan for L = 12, unfreeze = 3 (Sec 4.1): which layers train in each epoch, and whether
# the embeddings do. Epoch 4 adds the embeddings once every layer has thawed; epoch 5 changes nothing.
PLAN = {0: (range(9, 12), False), 1: (range(6, 12), False), 2: (range(3, 12), False),
        3: (range(12), False), 4: (range(12), True), 5: (range(12), True)}


@pytest.mark.parametrize("mlm", [False, True], ids=["no-mlm-head", "mlm-head"])
@pytest.mark.parametrize("epoch", sorted(PLAN))
def test_gradual_unfreezing_plan(epoch, mlm):
    """Epoch 0: classifier + layers 11-9; 1: + 8-6; 2: + 5-3; 3: + 2-0; 4: + embeddings; 5: as 4.
    thaw() returns the units training: 1 + layers + embeddings = 4, 7, 10, 13, 14, 14. With an MLM
    head the tied word matrix follows the embeddings, not the head."""
    model = tiny_classifier(layers=12, mlm=mlm)
    layers, emb = PLAN[epoch]
    assert finetune.thaw(model, epoch, FinetuneConfig(unfreeze=3)) == 1 + len(layers) + emb
    for n, p in model.named_parameters():
        m = re.match(r"bert\.layers\.(\d+)\.", n)
        want = int(m[1]) in layers if m else emb if n.startswith("bert.emb.") else True
        assert p.requires_grad == want, f"epoch {epoch}: {n}"
    assert finetune.thaw(model, 0, FinetuneConfig(unfreeze=0)) == 14
    assert all(p.requires_grad for p in model.parameters()), "unfreeze=0: everything trains from the start"


# ---------------------------------------------------------------------------------------------
# The command line's --field=value.

def test_parse_overrides_types():
    """Values take their field's type: 5e-5 (a negative exponent) is a float, --batch-size is
    --batch_size, bools read true/false/1/0 in any case, ints may be negative."""
    cfg = finetune.parse_overrides(["--lr=5e-5", "--batch-size=32", "--epochs=3", "--scheme=bio", "--save=FALSE",
                                    "--doc_context=1", "--delta=2", "--seed=-1", "--warmup=1e-1"], FinetuneConfig())
    got = (cfg.lr, cfg.batch_size, cfg.epochs, cfg.scheme, cfg.save, cfg.doc_context, cfg.delta, cfg.seed, cfg.warmup)
    assert got == (5e-5, 32, 3, "bio", False, True, 2.0, -1, 0.1)
    assert [type(x) for x in got] == [float, int, int, str, bool, bool, float, int, float]
    assert finetune.parse_overrides([], cfg) == cfg


@pytest.mark.parametrize("arg, match", [
    ("--batch_size=16.0", "batch_size must be int"), ("--epochs=four", "epochs must be int"),
    ("--lr=fast", "lr must be float"), ("--save=yes", "save takes true or false"),
    ("--learning_rate=3e-5", "field one of"), ("lr=3e-5", "expected --field=value"), ("--lr", "expected --field")])
def test_parse_overrides_rejects(arg, match):
    with pytest.raises(ValueError, match=match):
        finetune.parse_overrides([arg], FinetuneConfig())


# ---------------------------------------------------------------------------------------------
# End to end on en_tiny with a random BERT.

def bert_folder(folder, layers, hidden, mlm=False):
    """Random BERT in Hub layout; vocab = the specials + every basic token of en_tiny, cased."""
    basic = wordpiece.WordPiece(list(wordpiece.SPECIALS), do_lower_case=False).basic
    words = {w for f in ("train.txt", "valid.txt", "test.txt") for s in conll.read_conll(os.path.join(TINY, f))
             for w in s.words}
    vocab = list(wordpiece.SPECIALS) + sorted({t for w in words for t in basic(w)})
    torch.manual_seed(0)
    cfg = bert.BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                          intermediate_size=2 * hidden, max_position_embeddings=128)  # max_len 128 pieces
    bert.save_pretrained(bert.Bert(cfg, mlm=mlm), folder)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run: 2 layers, H=32, BIO, lr 1e-3, batch 8, 3 epochs on en_tiny (114 updates, ~2 s)."""
    tmp = tmp_path_factory.mktemp("finetune")
    folder = bert_folder(str(tmp / "bert"), layers=2, hidden=32)
    cfg = FinetuneConfig(model=folder, data=TINY, scheme="bio", lr=1e-3, batch_size=8, epochs=3, out=str(tmp / "runs"))
    log = []
    return cfg, finetune.train(cfg, log=log.append), log


def test_train_learns_and_records(trained):
    """The loss falls from near ln(9) (9 labels, a near-uniform new classifier) to under half of it,
    dev F1 rises above 0, and results.jsonl's first line is the returned record."""
    cfg, rec, log = trained
    losses = [float(x) for line in log for x in re.findall(r" loss (\S+)", line)]
    assert len(losses) >= cfg.epochs and losses[-1] < losses[0] and losses[-1] < math.log(9) / 2, losses
    assert rec["dev"]["f1"] > 0 and rec["dev_f1_per_epoch"][-1] > rec["dev_f1_per_epoch"][0]
    assert len(rec["dev_f1_per_epoch"]) == cfg.epochs and rec["dev_f1_per_epoch"][-1] == rec["dev"]["f1"]
    assert rec["key"] == cfg.key() and rec["config"] == asdict(cfg) and rec["device"] == "cpu"
    assert finetune.read_results(cfg.out)[0] == json.loads(json.dumps(rec))


def test_same_seed_same_result(trained, tmp_path):
    """On the CPU a run is repeatable: the same config (elsewhere) gives the same scores."""
    cfg, rec, _ = trained
    again = finetune.train(replace(cfg, out=str(tmp_path), save=False), log=lambda s: None)
    for k in ("dev", "test", "dev_f1_per_epoch"):
        assert again[k] == rec[k], k


def test_run_once_skips_done_runs(trained, monkeypatch):
    """run_once on a recorded config returns the record without training (train is replaced by a
    bomb for that call) and adds no line; another seed trains and adds one."""
    cfg, rec, _ = trained
    n = len(finetune.read_results(cfg.out))
    with monkeypatch.context() as mp:
        mp.setattr(finetune, "train", lambda *a, **k: pytest.fail("run_once retrained a recorded run"))
        log = []
        assert finetune.run_once(cfg, log=log.append) == json.loads(json.dumps(rec))
    assert "skipped" in log[0] and len(finetune.read_results(cfg.out)) == n
    other = finetune.run_once(replace(cfg, seed=2, save=False), log=lambda s: None)
    keys = [r["key"] for r in finetune.read_results(cfg.out)]
    assert len(keys) == n + 1 and keys[-1] == other["key"] != rec["key"]


def test_predict_conll_file_round_trip(trained, tmp_path):
    """predict() on the saved run and the test file writes the same predictions as train did, and its
    conlleval F1 is the recorded test F1."""
    cfg, rec, _ = trained
    run_dir = os.path.join(cfg.out, f"run-{rec['key']}")
    test = conll.splits(TINY)["test"]
    out = str(tmp_path / "test.pred.txt")
    report = finetune.predict(run_dir, test, out=out)
    with open(out, "rb") as f, open(os.path.join(run_dir, "test.pred.txt"), "rb") as g:
        assert f.read() == g.read()
    gold, pred = conll.read_conll(test), conll.read_conll(out)
    assert conlleval.evaluate([s.tags for s in gold], [s.tags for s in pred])["f1"] == rec["test"]["f1"]
    assert f"FB1: {rec['test']['f1']:6.2f}" in report


def test_predict_text(trained, tmp_path):
    """Text mode: one sentence a line, split at spaces and punctuation ("17,000." -> 17 , 000 .),
    "word TAG" lines in the training scheme (BIO). A test sentence typed as text gets the tags the
    CoNLL mode gave it, in BIO."""
    cfg, rec, _ = trained
    run_dir = os.path.join(cfg.out, f"run-{rec['key']}")
    gold = conll.read_conll(conll.splits(TINY)["test"])
    pred = conll.read_conll(os.path.join(run_dir, "test.pred.txt"))
    plain = [k for k, s in enumerate(gold) if all(wordpiece.split_punct(w) == [w] for w in s.words)][:3]
    path = tmp_path / "in.txt"
    lines = [" ".join(gold[k].words) for k in plain] + ["", "Arafat paid 17,000."]  # a blank line is no sentence
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = finetune.predict(run_dir, str(path), text=True)
    blocks = [[line.split(" ") for line in b.split("\n")] for b in out.rstrip("\n").split("\n\n")]
    assert len(blocks) == len(plain) + 1 and [w for w, _ in blocks[-1]] == ["Arafat", "paid", "17", ",", "000", "."]
    with open(os.path.join(run_dir, "labels.json")) as f:
        assert {t for b in blocks for _, t in b} <= set(json.load(f)["labels"])
    for k, b in zip(plain, blocks):
        assert [w for w, _ in b] == gold[k].words
        assert [t for _, t in b] == conll.to_bio(pred[k].tags), f"test sentence {k}"


@pytest.mark.parametrize("how", ["lr=1e30", "nan-loss"])
def test_nan_loss_stops_and_records_nothing(trained, tmp_path, monkeypatch, how):
    """A loss that turns NaN (an absurd lr, or a loss made NaN from the 2nd batch on) stops the run
    with FloatingPointError; no results.jsonl line and no run folder are written."""
    cfg, _, _ = trained
    cfg = replace(cfg, out=str(tmp_path / "runs"), epochs=1, max_train_sentences=32)  # 4 updates
    if how == "lr=1e30":
        cfg = replace(cfg, lr=1e30)
    else:
        calls, real = [], F.cross_entropy

        def nan_from_2nd(*a, **k):
            calls.append(1)
            return real(*a, **k) * (float("nan") if len(calls) >= 2 else 1.0)
        monkeypatch.setattr(F, "cross_entropy", nan_from_2nd)
    with pytest.raises(FloatingPointError, match="NaN"):
        finetune.train(cfg, log=lambda s: None)
    assert not os.path.exists(cfg.out) or os.listdir(cfg.out) == []


def test_unfrozen_epoch_leaves_frozen_layers_bit_exact(tmp_path):
    """One real epoch of train() with L = 12, unfreeze = 3: the saved model's layers 0-8 and
    embeddings are the checkpoint's bit for bit; every tensor of layers 9-11 changed."""
    folder = bert_folder(str(tmp_path / "bert"), layers=12, hidden=8)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1, unfreeze=3,
                         max_train_sentences=32, out=str(tmp_path / "runs"))
    rec = finetune.train(cfg, log=lambda s: None)
    tuned = finetune.load_model(os.path.join(cfg.out, f"run-{rec['key']}"), torch.device("cpu"))[0].bert.state_dict()
    for n, p in bert.from_pretrained(folder).state_dict().items():
        m = re.match(r"layers\.(\d+)\.", n)
        if m and int(m[1]) >= 9:
            assert not torch.equal(tuned[n], p), f"{n} is thawed in epoch 0 but did not change"
        else:
            assert torch.equal(tuned[n], p), f"{n} is frozen in epoch 0 but changed"


# ---------------------------------------------------------------------------------------------
# grid() and table() with a stand-in for train().

def fake_train(calls, fail_at=0):
    """A train() that scores a config at once and records it as train does. dev F1 =
    80 + {2e-5: 0, 3e-5: 2, 5e-5: 1}[lr] + (epochs == 4) - 0.5 (batch == 32) + 0.1 seed, test F1 = dev - 1;
    the setting (32, 5e-5, 3) instead gets +20 on seed 1 and -20 on seed 2: the best single run
    (101.1) but mean dev 80.65. Best mean dev (2 seeds): batch 16, lr 3e-5, 4 epochs, 83.15."""
    def train(cfg, log=print):
        calls.append(cfg)
        if len(calls) == fail_at:
            raise KeyboardInterrupt("killed")
        dev = 80 + {2e-5: 0, 3e-5: 2, 5e-5: 1}[cfg.lr] + (cfg.epochs == 4) - 0.5 * (cfg.batch_size == 32)
        dev += 0.1 * cfg.seed
        if (cfg.batch_size, cfg.lr, cfg.epochs) == (32, 5e-5, 3):
            dev += 20 if cfg.seed == 1 else -20
        rec = dict(key=cfg.key(), config=asdict(cfg), dev=dict(f1=dev), test=dict(f1=dev - 1))
        finetune.append_result(cfg.out, rec)
        return rec
    return train


def test_grid_picks_best_mean_dev_and_resumes(tmp_path, monkeypatch):
    """12 settings x 2 seeds = 24 runs, save off. Killed at the 7th run, the restarted grid runs
    only the 18 not recorded; the choice is the best mean dev, its 2 runs' test F1 82.1 and 82.2."""
    cfg = FinetuneConfig(out=str(tmp_path), seeds=2)
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls, fail_at=7))
    with pytest.raises(KeyboardInterrupt):
        finetune.grid(cfg, log=lambda s: None)
    assert len(finetune.read_results(cfg.out)) == 6
    calls.clear()
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    best, runs = finetune.grid(cfg, log=lambda s: None)
    assert len(calls) == 18 and all(not c.save for c in calls)
    done = finetune.read_results(cfg.out)
    settings = {tuple(r["config"][k] for k in ("batch_size", "lr", "epochs", "seed")) for r in done}
    assert len(done) == len(settings) == 24 and {s[3] for s in settings} == {1, 2}
    assert best == dict(batch_size=16, lr=3e-5, epochs=4)
    assert [r["config"]["seed"] for r in runs] == [1, 2]
    assert [r["test"]["f1"] for r in runs] == pytest.approx([82.1, 82.2])


def test_reproduce_runs_both_schemes_then_the_ablations(tmp_path, monkeypatch, capsys):
    """reproduce: IOB1 and BIO at the chosen setting, then each of the 7 Table 4-6 changes, 2 seeds each:
    (2 + 7) x 2 = 18 runs; the printed table has one row per scheme/method, 9 in all."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    finetune.reproduce(FinetuneConfig(out=str(tmp_path), seeds=2, ablations=True), log=lambda s: None)
    assert len(calls) == 18 and {c.scheme for c in calls} == {"iob1", "bio"}
    assert [dict(schedule=c.schedule, delta=c.delta, unfreeze=c.unfreeze, lm_epochs=c.lm_epochs)
            for c in calls[4::2]] == [dict(schedule="constant", delta=1.0, unfreeze=0, lm_epochs=0),
                                      dict(schedule="linear", delta=2.6, unfreeze=0, lm_epochs=0),
                                      dict(schedule="linear", delta=1.6, unfreeze=0, lm_epochs=0),
                                      dict(schedule="linear", delta=1.0, unfreeze=3, lm_epochs=0),
                                      dict(schedule="linear", delta=2.6, unfreeze=3, lm_epochs=0),
                                      dict(schedule="linear", delta=1.0, unfreeze=0, lm_epochs=10),
                                      dict(schedule="linear", delta=1.0, unfreeze=0, lm_epochs=20)]
    rows = [line for line in capsys.readouterr().out.split("\n") if line.startswith("| en ")]
    assert len(rows) == 9


def test_reproduce_de_needs_the_licensed_folder(tmp_path):
    with pytest.raises(ValueError, match="deu.train, deu.testa and deu.testb"):
        finetune.reproduce(FinetuneConfig(lang="de", out=str(tmp_path)))


def add_runs(out, dev_test, **setting):
    for seed, (dev, test) in enumerate(dev_test, start=1):
        cfg = FinetuneConfig(out=out, seed=seed, **setting)
        finetune.append_result(out, dict(key=cfg.key(), config=asdict(cfg), dev=dict(f1=dev), test=dict(f1=test)))


def test_table_puts_the_papers_number_beside_ours(tmp_path):
    """Two mBERT IOB1 English runs, dev 88 and 90, test 90 and 92: mean +- sample std = 89.00 +- 1.41
    and 91.00 +- 1.41 (sqrt 2), and the paper's 91.9 (Table 2, no dev reported). A local model folder
    named like the Hub id finds the same paper row; one run has std 0."""
    add_runs(str(tmp_path), [(88.0, 90.0), (90.0, 92.0)])
    add_runs(str(tmp_path), [(80.0, 81.0)], model="/models/bert-base-multilingual-cased/")
    lines = finetune.table(str(tmp_path)).split("\n")
    assert lines[2:] == [
        "| en | /models/bert-base-multilingual-cased/ | IOB1 | 16 | 3e-05 | 4 | BERT | 1 | "
        "80.00 ± 0.00 | 81.00 ± 0.00 | – | 91.9 | ✓ |",
        "| en | bert-base-multilingual-cased | IOB1 | 16 | 3e-05 | 4 | BERT | 2 | "
        "89.00 ± 1.41 | 91.00 ± 1.41 | – | 91.9 | ✓ |"]


METHODS = [(dict(), "BERT"), (dict(delta=2.6, unfreeze=3), "delta=2.6, unfreeze=3"), (dict(schedule="stlr"), "schedule=stlr"),
           (dict(schedule="constant", max_train_sentences=1500), "schedule=constant, max_train_sentences=1500"),
           (dict(unfreeze=1), "unfreeze=1"), (dict(doc_context=True), "doc_context=True"),
           (dict(max_len=256, warmup=0.0), "warmup=0.0, max_len=256"), (dict(bias_correction=True), "bias_correction=True")]


@pytest.mark.parametrize("setting, method", METHODS, ids=[m for _, m in METHODS])
def test_table_names_the_method(tmp_path, setting, method):
    """The method column names every setting that differs from plain BERT fine-tuning, including
    ULMFiT's one layer per epoch (unfreeze=1) and document context (Python's 1 == 1.0 == True must
    not hide them behind the default delta=1.0)."""
    add_runs(str(tmp_path), [(90.0, 91.0)], **setting)
    assert finetune.table(str(tmp_path)).split("\n")[2].split(" | ")[6] == method


def test_table_marks_the_dev_choice_per_method(tmp_path):
    """Two settings of plain BERT (dev 90 vs 91) and one with delta=2.6 (dev 80): the chosen mark goes to
    the dev-best setting of each method, lr 5e-5 for BERT (91 > 90) and the only delta=2.6 row."""
    add_runs(str(tmp_path), [(90.0, 95.0)], lr=3e-5)
    add_runs(str(tmp_path), [(91.0, 90.0)], lr=5e-5)
    add_runs(str(tmp_path), [(80.0, 80.0)], delta=2.6)
    rows = [line.split(" | ") for line in finetune.table(str(tmp_path)).split("\n")[2:]]
    marked = {(r[4], r[6]) for r in rows if r[-1] == "✓ |"}
    assert marked == {("5e-05", "BERT"), ("3e-05", "delta=2.6")}


def _append_many(out, start):
    for i in range(start, start + 40):
        finetune.append_result(out, dict(key=str(i)))


def test_append_result_from_two_processes_loses_nothing(tmp_path):
    """Two processes append 40 lines each to one results.jsonl at the same time: all 80 are there."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    ps = [ctx.Process(target=_append_many, args=(str(tmp_path), start)) for start in (0, 1000)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    keys = sorted(int(r["key"]) for r in finetune.read_results(str(tmp_path)))
    assert keys == list(range(40)) + list(range(1000, 1040))


# --- Masked-LM fine-tuning (Sec 4.2, Table 6) -------------------------------------------------

class SpecialIds:
    cls_id, sep_id, pad_id, mask_id = 2, 3, 0, 4

    def __len__(self):
        return 1000


def test_mask_pieces_follows_bert_80_10_10():
    """BERT App. A.1: 15% of the non-special pieces are chosen; of those 80% become [MASK], 10% a random
    piece, 10% stay. Labels hold the original id exactly where chosen. With 200k pieces each share is
    within 1 point (the binomial std is under 0.2 points)."""
    torch.manual_seed(0)
    ids = torch.randint(5, 1000, (400, 500))
    ids[:, 0], ids[:, -1], ids[:, -50:-1] = 2, 3, 0  # [CLS] ... [SEP] and padding
    x, y = finetune.mask_pieces(ids, SpecialIds())
    special = (ids == 2) | (ids == 3) | (ids == 0)
    chosen = y != -100
    assert not (chosen & special).any() and torch.equal(y[chosen], ids[chosen])
    assert torch.equal(x[~chosen], ids[~chosen]), "unchosen pieces are never changed"
    share = chosen.sum() / (~special).sum()
    masked = (x[chosen] == 4).float().mean()
    kept = (x[chosen] == ids[chosen]).float().mean()
    assert abs(share - 0.15) < 0.01 and abs(masked - 0.8) < 0.01
    assert abs(kept - 0.1) < 0.01 + 1 / 1000, "10% stay (plus the random draws that hit the same id)"


def test_lm_finetune_lowers_mlm_loss_and_is_reused(tmp_path, monkeypatch):
    """Three masked-LM epochs on en_tiny's text lower the loss; the adapted BERT is written as a Hub-layout
    folder, a second call returns it without training again, and a task run starts from it."""
    folder = bert_folder(str(tmp_path / "bert"), layers=2, hidden=32, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1, lm_epochs=3,
                         out=str(tmp_path / "runs"), save=False)
    log = []
    lm = finetune.lm_finetune(cfg, log=log.append)
    losses = [float(x) for line in log for x in re.findall(r"masked-LM loss (\S+)", line)]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    adapted, start = bert.from_pretrained(lm), bert.from_pretrained(folder)
    assert adapted.mlm is not None
    assert not torch.equal(adapted.layers[0].qkv.weight, start.layers[0].qkv.weight)
    monkeypatch.setattr(finetune, "AdamW", None)  # training again would call it
    assert finetune.lm_finetune(cfg, log=log.append) == lm
    monkeypatch.undo()
    loaded = []
    real_load = bert.from_pretrained
    monkeypatch.setattr(bert, "from_pretrained", lambda name: loaded.append(name) or real_load(name))
    rec = finetune.train(cfg, log=lambda s: None)
    assert loaded == [lm], "the task run starts from the LM-adapted BERT"
    assert rec["config"]["lm_epochs"] == 3 and rec["dev"]["f1"] >= 0


def test_lm_run_repeats_whether_or_not_its_lm_folder_exists(tmp_path):
    """The first run trains the LM stage, the second finds its folder: the same seed must still give the
    same task run, weight for weight (the LM stage's random draws may not shift the classifier's init or
    the dropout masks)."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1, lm_epochs=1,
                         out=str(tmp_path / "a"))
    first = finetune.train(cfg, log=lambda s: None)
    head = os.path.join(cfg.out, f"run-{cfg.key()}", "classifier.safetensors")
    weights = open(head, "rb").read()
    assert len([d for d in os.listdir(cfg.out) if d.startswith("lm-")]) == 1
    os.remove(os.path.join(cfg.out, "results.jsonl"))  # forget the run, keep the LM folder
    again = finetune.train(cfg, log=lambda s: None)
    assert open(head, "rb").read() == weights
    for k in ("dev", "test", "dev_f1_per_epoch"):
        assert again[k] == first[k], k


def test_lm_finetune_needs_an_mlm_head(tmp_path):
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, mlm=False)
    cfg = FinetuneConfig(model=folder, data=TINY, lm_epochs=1, out=str(tmp_path / "runs"))
    with pytest.raises(ValueError, match="no masked-LM head"):
        finetune.lm_finetune(cfg)


def test_training_steps_equal_hf_and_torch_adamw(minilm_dir):
    """Real MiniLM weights, dropout off: 6 updates of our TokenClassifier + our AdamW (bias_correction on)
    + BERT's clip give the same losses as HF's BertForTokenClassification + torch.optim.AdamW with the
    same groups, batches and lr (so a fine-tuning gap between the two can only be randomness)."""
    import transformers
    torch.manual_seed(0)
    ref = transformers.BertForTokenClassification.from_pretrained(minilm_dir, num_labels=9).eval()
    ours = bert.TokenClassifier(bert.from_pretrained(minilm_dir), 9).eval()  # eval(): dropout off, nothing else
    ours.out.load_state_dict(ref.classifier.state_dict())
    cfg = FinetuneConfig(lr=1e-4, bias_correction=True)
    opt = finetune.AdamW(finetune.param_groups(ours, cfg), lr=cfg.lr, eps=cfg.eps, bias_correction=True)
    plain = [p for n, p in ref.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in ref.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    ref_opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.01), dict(params=plain, weight_decay=0.0)],
                                lr=cfg.lr, eps=cfg.eps)
    gen = torch.Generator().manual_seed(0)
    for step in range(6):
        ids = torch.randint(1000, 30000, (5, 11), generator=gen)
        mask = (torch.arange(11) < torch.tensor([11, 9, 7, 11, 3])[:, None]).long()
        y = torch.randint(0, 9, (5, 11), generator=gen).masked_fill(mask == 0, -100)
        loss = F.cross_entropy(ours(ids, mask).flatten(0, 1), y.flatten(), ignore_index=-100)
        ref_loss = F.cross_entropy(ref(input_ids=ids, attention_mask=mask).logits.flatten(0, 1), y.flatten(),
                                   ignore_index=-100)
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5), step
        finetune.update(ours, opt, loss, step, 6, replace(cfg, schedule="constant"))
        ref_loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
