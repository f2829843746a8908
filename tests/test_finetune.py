"""finetune.py: the optimizer, schedules, Eq. (1), gradual unfreezing (paper Sec 3.3, footnote 9's
order), the masked-LM stage (Sec 4.2; experiments.lm_stage keeps it in OUT/lm-KEY) and the training
loop with its log (finetune.Meter); fastfit.py, its CUDA-graph path, held equal to it (static
shapes on the CPU in seconds, replayed from CUDA graphs where there is a GPU).

References: torch.optim.AdamW (the bias-corrected update), google-research/bert optimization.py
written out by hand (BertAdam), ULMFiT Eq. (3) and the paper's Eq. (1) worked by hand, HF's
BertForTokenClassification. The runs use a random BERT whose vocab holds every word of
tests/fixtures/en_tiny whole, so they need no download.
"""
import contextlib
import copy
import io
import math
import os
import re
import time
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import atomic
import bert
import conll
import conlleval
import corpora
import fastfit
import finetune
import wordpiece
from conftest import FIXTURES, bert_folder, cpu_only
from finetune import FinetuneConfig

TINY = os.path.join(FIXTURES, "en_tiny")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


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
    cfg = bert.BertConfig(vocab_size=30, hidden_size=hidden, num_hidden_layers=layers,
                          num_attention_heads=2, intermediate_size=2 * hidden,
                          max_position_embeddings=16,
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


def groups(model, cfg):
    return finetune.param_groups(model, cfg.lr, cfg.delta, cfg.weight_decay)


def ours(model, cfg, bias_correction, fused=True):
    return finetune.AdamW(groups(model, cfg), lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay,
                          bias_correction=bias_correction, fused=fused)


# ---------------------------------------------------------------------------------------------
# The optimizer.

@pytest.mark.parametrize("delta", [1.0, 2.6])
def test_adamw_with_bias_correction_equals_torch(delta):
    """bias_correction=True is torch.optim.AdamW: same start, same 100 random batches, the same
    decay / no-decay groups (and for delta=2.6, L=3, Eq. 1's 4 rates: eta0 for the classifier and
    layer 2, eta0/2.6 layer 1, eta0/2.6^2 layer 0, eta0/2.6^3 embeddings) -> every parameter
    within 1e-5 of torch's, relative to its largest entry. (Ours is one fused kernel per group, lr
    in a tensor so that a CUDA graph can replay it; torch's default path takes the same math in
    single ops that round at other places, and 100 steps amplify float32 rounding to about 3e-6:
    one step agrees to an ulp or two.)"""
    cfg = FinetuneConfig(lr=1e-3, delta=delta)  # a high lr so that 100 steps move the weights far
    model = tiny_classifier(layers=3)
    ref, start = copy.deepcopy(model), copy.deepcopy(model)
    opt = ours(model, cfg, bias_correction=True)
    ref_opt = torch.optim.AdamW(groups(ref, cfg), lr=cfg.lr, betas=(0.9, 0.999), eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
    assert len({g["lr"] for g in ref_opt.param_groups}) == (1 if delta == 1.0 else 4)
    run_steps(model, opt, torch.Generator().manual_seed(0), 1)
    run_steps(ref, ref_opt, torch.Generator().manual_seed(0), 1)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert (p - q).abs().max() <= 1e-6 * q.abs().max(), f"step 1: {n}"
    run_steps(model, opt, torch.Generator().manual_seed(1), 99)
    run_steps(ref, ref_opt, torch.Generator().manual_seed(1), 99)
    for (n, p), q, p0 in zip(model.named_parameters(), ref.parameters(), start.parameters()):
        assert (p - q).abs().max() <= 1e-5 * q.abs().max(), n
        assert not torch.equal(p0, q), f"{n} never moved: the comparison would prove nothing"


def test_bertadam_equals_hand_update():
    """bias_correction=False is google-research/bert optimization.py (AdamWeightDecayOptimizer),
    written out here in float64 for 3 steps:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p = p - lr (m / (sqrt(v) + eps) + wd p)
    with no 1 - b^t corrections. So step 1 (m = v = 0) moves a weight whose |g| >> eps by
    lr (0.1 / sqrt(0.001) + wd p) = lr (sqrt(10) + wd p), 3.16 lr, where corrected Adam moves
    it lr."""
    lr, wd, eps, b1, b2 = 0.1, 0.01, 1e-6, 0.9, 0.999
    p0 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    grads = torch.tensor([[0.3, -0.2, 1e-3], [-0.1, 0.4, 0.0], [0.2, 0.2, -5.0]],
                         dtype=torch.float64)
    p = nn.Parameter(p0.clone())
    # BERT's betas and eps are the defaults
    opt = finetune.AdamW([p], lr=lr, eps=eps, weight_decay=wd)
    want, m, v = (p0.clone(), torch.zeros(3, dtype=torch.float64),
                  torch.zeros(3, dtype=torch.float64))
    for t, g in enumerate(grads):
        p.grad = g.clone()
        opt.step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        want = want - lr * (m / (v.sqrt() + eps) + wd * want)
        torch.testing.assert_close(p.detach(), want, rtol=1e-14, atol=0, msg=f"step {t + 1}")
        if t == 0:
            # eps costs 0.01%; g[2] = 1e-3 is not >> eps: 3% short
            moved = (p0 - p.detach()) / lr - wd * p0
            torch.testing.assert_close(moved[:2], math.sqrt(10) * g[:2].sign(), rtol=1e-3, atol=0)


def test_weight_decay_skips_biases_and_layernorm():
    """Decay falls on weight matrices (Linear, Embedding) only; every bias and both LayerNorm
    parameters get weight_decay 0 (BERT optimization.py's exclude_from_weight_decay). Each
    parameter is in exactly one group. Judged by module type, not by the names param_groups
    reads."""
    model = tiny_classifier(layers=2, mlm=True)
    groups = finetune.param_groups(model, 1e-3, 1.0, 0.01)
    wd = [(id(p), g["weight_decay"]) for g in groups for p in g["params"]]  # noqa
    assert len(wd) == len(dict(wd)) == len(list(model.parameters())), (
        "a parameter in no group or in two")
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
    want = 0.95 - 0.1 * 0.1 / (math.sqrt(1e-3) + 1e-6)
    torch.testing.assert_close(a.detach(), torch.full((3,), want))
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
    # both come back from the state
    fresh_opt = ours(fresh, replace(cfg, lr=0.5), not bias_correction)
    fresh_opt.load_state_dict(saved["opt"])
    run_steps(fresh, fresh_opt, gen, 5)
    for (n, p), q in zip(fresh.named_parameters(), straight.parameters()):
        assert torch.equal(p, q), n


# ---------------------------------------------------------------------------------------------
# Schedules, Eq. (1), gradual unfreezing.

# total = 100 updates, warmup / cut_frac 0.1 -> cut = 10. linear (BERT's warmup_linear /
# polynomial_decay): step/10 up to 10, then 1 - step/100: 0.9 at step 10, 0.45 at 55, 0.01 at 99.
# stlr, ULMFiT Eq. (3) with ratio 32: p = t/10 before the cut, 1 - (t - 10)/90 after it;
# lr = (1 + 31 p) / 32, so p = 0 -> 1/32, p = 1/2 -> 16.5/32, p = 1/90 (step 99) -> (1 + 31/90)/32.
@pytest.mark.parametrize("schedule, step, want", [
    ("linear", 0, 0.0), ("linear", 5, 0.5), ("linear", 10, 0.9), ("linear", 55, 0.45),
    ("linear", 99, 0.01),
    ("stlr", 0, 1 / 32), ("stlr", 5, 16.5 / 32), ("stlr", 10, 1.0), ("stlr", 55, 16.5 / 32),
    ("stlr", 99, (1 + 31 / 90) / 32),
    ("constant", 0, 1.0), ("constant", 55, 1.0), ("constant", 99, 1.0)])
def test_lr_factor_by_hand(schedule, step, want):
    cfg = FinetuneConfig(schedule=schedule, warmup=0.1, stlr_ratio=32.0)
    got = finetune.lr_factor(step, 100, cfg.warmup, cfg.schedule, cfg.stlr_ratio)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("mlm", [False, True], ids=["no-mlm-head", "mlm-head"])
def test_discriminative_lr_every_group(mlm):
    """Eq. (1), delta = 2.6, L = 12: the classifier and layer 11 get eta0, layer 11 - k gets
    eta0 / 2.6^k, the embeddings eta0 / 2.6^12 (= eta0 / 96,717). The word embedding matrix is an
    embedding even when a checkpoint's MLM head (mBERT has one) is tied to it; the unused MLM head's
    own parameters sit with the classifier. Every group and every parameter is checked."""
    eta0 = 1e-3
    model = tiny_classifier(layers=12, mlm=mlm)
    gs = finetune.param_groups(model, eta0, 2.6)
    assert sorted(g["depth"] for g in gs) == [d for d in range(14)
                                              for _ in range(2)]  # decay, plain
    for g in gs:
        assert g["lr"] == pytest.approx(eta0 / 2.6 ** max(0, g["depth"] - 1), rel=1e-12)
    lr = {id(p): g["lr"] for g in gs for p in g["params"]}
    for n, p in model.named_parameters():  # the tied matrix is named once, as bert.emb.word.weight
        m = re.match(r"bert\.layers\.(\d+)\.", n)
        want = (eta0 / 2.6 ** (11 - int(m[1])) if m
                else eta0 / 2.6 ** 12 if n.startswith("bert.emb.") else eta0)
        assert lr[id(p)] == pytest.approx(want, rel=1e-12), (
            f"{n}: lr {lr[id(p)]:.3g}, want {want:.3g}"
            + (" (the tied word embeddings took the MLM head's "
               "rate: param_groups lets the head own them)" * mlm))


# Hand-derived plan for L = 12, unfreeze = 3 (Sec 3.3, as footnote 9's notebook runs it): which
# layers train in each epoch, and whether the embeddings do. Epoch 0 trains the classifier alone;
# each later epoch thaws the next 3 layers top-down; epoch 4, which reaches layers 2-0, thaws the
# embeddings with them; epoch 5 changes nothing.
PLAN = {0: (range(0), False), 1: (range(9, 12), False), 2: (range(6, 12), False),
        3: (range(3, 12), False), 4: (range(12), True), 5: (range(12), True)}


@pytest.mark.parametrize("mlm", [False, True], ids=["no-mlm-head", "mlm-head"])
@pytest.mark.parametrize("epoch", sorted(PLAN))
def test_gradual_unfreezing_plan(epoch, mlm):
    """L = 12, 3 layers an epoch. Epoch 0 (the first): the classifier alone; 1: + layers 11-9;
    2: + 8-6; 3: + 5-3; 4: + 2-0 and the embeddings; 5: as 4. unfreeze() returns the units
    training: 1 + layers + embeddings = 1, 4, 7, 10, 14, 14. With an MLM head the tied word matrix
    follows the embeddings, not the head."""
    model = tiny_classifier(layers=12, mlm=mlm)
    layers, emb = PLAN[epoch]
    assert finetune.unfreeze(model, epoch, 3) == [1, 4, 7, 10, 14, 14][epoch] == (
        1 + len(layers) + emb)
    for n, p in model.named_parameters():
        m = re.match(r"bert\.layers\.(\d+)\.", n)
        want = int(m[1]) in layers if m else emb if n.startswith("bert.emb.") else True
        assert p.requires_grad == want, f"epoch {epoch}: {n}"
    assert finetune.unfreeze(model, 0, 0) == 14
    assert all(p.requires_grad for p in model.parameters()), (
        "unfreeze=0: everything trains from the start")


@pytest.mark.parametrize("epochs, never", [
    (5, []), (6, []), (4, ["layer 2", "layer 1", "layer 0", "embeddings"]),
    (1, ["layer 11", "layer 10", "layer 9", "layer 8", "layer 7", "layer 6", "layer 5", "layer 4",
         "layer 3", "layer 2", "layer 1", "layer 0", "embeddings"])])
def test_never_trained_names_what_unfreezing_does_not_reach(epochs, never):
    """L = 12, 3 an epoch: 5 epochs (Sec 3.3's count) reach every unit; 4 never reach layers 2-0
    or the embeddings (epoch 4 would); 1 trains the classifier alone. What finetune.unfreeze lets
    train over `epochs`, epoch by epoch, agrees; per_epoch 0 leaves nothing out."""
    assert finetune.never_trained(12, 3, epochs) == never
    model = tiny_classifier(layers=12)
    trained = {i for e in range(epochs) for i in range(finetune.unfreeze(model, e, 3))}
    names = finetune.unit_names(12)
    assert [names[i] for i in range(14) if i not in trained] == never
    assert finetune.never_trained(12, 0, 1) == []


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias_correction", [False, True])
def test_fused_step_equals_per_tensor_reference(bias_correction, device):
    """The fused step (torch's fused AdamW kernel, CPU or CUDA; for BertAdam handed t = inf) and
    adamw_update written per tensor as google-research/bert writes it give the same weights over
    20 steps with Eq. (1)'s rates (delta 2.6), all but the classifier frozen (no grads) until
    step 10 (gradual unfreezing's first epoch), and each group's lr a 0-d tensor on the device
    on one side (as fastfit sets it) and a float on the other (as finetune.fit does), at the
    schedule's value at each step. fp32 throughout; apart by rounding only: within 1e-7 on the
    CPU, and 1e-6 on CUDA (its kernel orders its float ops its own way: on an H100 one weight was
    1.25e-7 off), a thousandth of one step's size (lr 1e-3)."""
    cfg = FinetuneConfig(lr=1e-3, delta=2.6)
    fast, slow = tiny_classifier(layers=3).to(device), tiny_classifier(layers=3).to(device)
    opt_fast = ours(fast, cfg, bias_correction)
    opt_slow = ours(slow, cfg, bias_correction, fused=False)
    peak = [g["lr"] for g in opt_fast.param_groups]
    gen = torch.Generator().manual_seed(0)
    for step in range(20):
        for m in (fast, slow):
            finetune.unfreeze(m, step // 10, 3)  # the classifier, then the 3 layers and embeddings
        ids = torch.randint(0, 30, (4, 12), generator=gen).to(device)
        y = torch.randint(0, 5, (4, 12), generator=gen).to(device)
        scale = finetune.lr_factor(step, 20, 0.1, "linear")
        for g, rate in zip(opt_fast.param_groups, peak):  # as fastfit sets them
            g["lr"] = torch.tensor(rate * scale, device=device)
        for g, rate in zip(opt_slow.param_groups, peak):  # as finetune.fit sets them
            g["lr"] = rate * scale
        for m, opt in ((fast, opt_fast), (slow, opt_slow)):
            F.cross_entropy(m(ids).flatten(0, 1), y.flatten()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for (n, p), q in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7 if device == "cpu" else 1e-6,
                                   msg=lambda m: f"{n}: {m}")
    assert opt_fast.state[fast.bert.emb.word.weight]["step"] == 10, "thawed at step 10: own count"


def tiny_folder(tmp_path, layers=2, hidden=16, mlm=False):
    return bert_folder(str(tmp_path / "bert"), layers=layers, hidden=hidden, mlm=mlm)


def fit_once(folder, cfg, graphs, seed=0, stage="task", dropout=False, log=None):
    """finetune.fit (graphs=False) or fastfit.fit on en_tiny's training windows from `folder`'s
    weights -> model: the tagger with the task loss, or (stage "masked-LM") the encoder with the
    masked-LM loss. Dropout off unless asked, so that two paths compute alike."""
    tok = wordpiece.WordPiece.from_pretrained(folder)
    data, labels = corpora.read_splits(cfg, tok)
    torch.manual_seed(seed)
    model = bert.from_pretrained(folder)
    if stage == "task":
        model = bert.TokenClassifier(model, len(labels))
    if not dropout:
        model.eval()
        model.train = lambda mode=True: model  # fit calls train(); keep dropout off
    opt = finetune.AdamW(groups(model, cfg), lr=cfg.lr, eps=cfg.eps,
                         weight_decay=cfg.weight_decay, bias_correction=cfg.bias_correction)
    feats = data["train"].feats
    loss_of = finetune.task_loss if stage == "task" else finetune.lm_loss(tok)
    fit = fastfit.fit if graphs else finetune.fit
    fit(model, opt, finetune.tensorize(feats, tok, torch.device("cpu")),
        finetune.batch_plan(feats, cfg, cfg.epochs), cfg, loss_of, log=log or (lambda s: None))
    return model


@pytest.mark.parametrize("graphs", [False, True])
def test_grads_are_let_go_and_the_unused_mlm_head_stays_as_loaded(tmp_path, graphs):
    """After each update no gradient is kept (each backward hands over a fresh one instead of
    adding into zeros), and in the task stage the masked-LM head, which the task loss never
    reaches, is neither moved nor decayed: as in HF's and google-research/bert's task models,
    which have no such head. The weights the loss does reach all move."""
    folder = tiny_folder(tmp_path, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=7, epochs=1,
                         max_train_sentences=30)
    model = fit_once(folder, cfg, graphs=graphs)
    start = bert.from_pretrained(folder)
    assert all(p.grad is None for p in model.parameters())
    head = {id(p) for p in model.bert.mlm.parameters()} - {id(model.bert.emb.word.weight)}
    for (n, p), q in zip(model.bert.named_parameters(), start.parameters()):
        assert torch.equal(p, q) == (id(p) in head), n


@pytest.mark.parametrize("unfreeze, clip_each", [(0, False), (1, False), (0, True)])
def test_static_shape_updates_equal_eager(tmp_path, unfreeze, clip_each):
    """fastfit's CUDA-graph path without the capture: batches padded to multiples of 16 pieces and
    to full size with the dummy row, lr read from the device table by the device counter. After 2
    epochs (36 updates, a short last batch in each, unfreezing one layer an epoch or not) the
    weights and the logged losses equal finetune.fit's, which pads to the longest window of
    each batch only. The static path trains twice more before each (would-be) capture, as the
    CUDA warm-up does: what it changes must be put back. --clip_each clips alike in both."""
    folder = tiny_folder(tmp_path)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=7, epochs=2,
                         unfreeze=unfreeze, max_train_sentences=120, clip_each=clip_each)
    logs = [], []
    eager = fit_once(folder, cfg, graphs=False, log=logs[0].append)
    static = fit_once(folder, cfg, graphs=True, log=logs[1].append)
    losses = [[float(x) for line in log for x in re.findall(r" loss (\S+)", line)] for log in logs]
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], abs=2e-4), losses
    start = bert.from_pretrained(folder)
    for (n, p), q in zip(eager.named_parameters(), static.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)
    moved = [not torch.equal(p, q) for p, q in zip(eager.bert.parameters(), start.parameters())]
    assert all(moved) != bool(unfreeze), "with unfreezing the embeddings never train in 2 epochs"


@pytest.mark.parametrize("tied", [False, True])
def test_unused_rows_are_only_decayed_as_adamw_would(tmp_path, tied):
    """The task stage trains only the word-embedding rows its windows use (fastfit.UnusedRows);
    AdamW would move every other row by its weight decay alone, p (1 - lr_t wd) at each update.
    2 epochs on 60 sentences, the dev words' rows unused: at each epoch's end (as the dev
    evaluation reads it) and after, the whole table equals finetune.fit's, whose unused rows are
    the loaded ones times the product of (1 - lr_t wd) over the updates (and not the loaded ones).
    While training, the weight's moments hold the used rows only; after, every row's, as AdamW's
    own (0 for the unused), so that a second fit with the same optimizer (all 120 sentences, one
    epoch) again ends where finetune.fit does. tied: the word embeddings are also the (unused)
    masked-LM decoder's."""
    folder = tiny_folder(tmp_path, mlm=tied)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-2, batch_size=7, epochs=2,
                         max_train_sentences=60)
    more = replace(cfg, epochs=1, max_train_sentences=120)
    tok = wordpiece.WordPiece.from_pretrained(folder)
    labels = corpora.read_splits(cfg, tok)[1]
    feats = [corpora.read_splits(c, tok)[0]["train"].feats for c in (cfg, more)]
    on_cpu = [finetune.tensorize(f, tok, torch.device("cpu")) for f in feats]
    start = bert.from_pretrained(folder).emb.word.weight.detach().clone()
    used = torch.unique(on_cpu[0].ids)
    unused = torch.ones(len(start), dtype=torch.bool)
    unused[used] = False
    assert 0 < int(unused.sum()) < len(start)
    tables, moments, models = {}, {}, {}
    for graphs in (False, True):
        torch.manual_seed(0)
        model = models[graphs] = bert.TokenClassifier(bert.from_pretrained(folder),
                                                      len(labels)).eval()
        model.train = lambda mode=True, m=model: m  # dropout off: the two paths compute alike
        word = model.bert.emb.word.weight
        opt = finetune.AdamW(groups(model, cfg), lr=cfg.lr, eps=cfg.eps,
                             weight_decay=cfg.weight_decay)
        seen, shapes = tables[graphs], moments[graphs] = [], []

        def after(epoch, loss, seen=seen, shapes=shapes, word=word, opt=opt):
            seen.append(word.detach().clone())
            shapes.append(tuple(opt.state[word]["m"].shape))
        fit = fastfit.fit if graphs else finetune.fit
        fit(model, opt, on_cpu[0], finetune.batch_plan(feats[0], cfg, cfg.epochs), cfg,
            finetune.task_loss, log=lambda s: None, after_epoch=after)
        seen.append(word.detach().clone())
        shapes.append(opt.state[word]["m"].clone())
        fit(model, opt, on_cpu[1], finetune.batch_plan(feats[1], more, 1), more,
            finetune.task_loss, log=lambda s: None)
        if tied:
            assert model.bert.mlm.decoder.weight is word
    total = len(finetune.batch_plan(feats[0], cfg, 1)[0]) * cfg.epochs
    factor = 1.0
    for t in range(total):
        factor *= 1 - cfg.lr * finetune.lr_factor(t, total, cfg.warmup, cfg.schedule) * \
            cfg.weight_decay
    torch.testing.assert_close(tables[False][-1][unused], start[unused] * factor, rtol=1e-6,
                               atol=0)
    assert not torch.equal(tables[False][-1][unused], start[unused])
    assert len(tables[True]) == len(tables[False]) == 3
    for eager, static in zip(tables[False], tables[True]):
        torch.testing.assert_close(static[unused], eager[unused], rtol=1e-6, atol=0)
        torch.testing.assert_close(static, eager, rtol=1e-4, atol=1e-6)
    H = start.shape[1]
    assert moments[False][:2] == [(len(start), H)] * 2 and moments[True][:2] == [(len(used), H)] * 2
    m = moments[True][2]
    assert m.shape == (len(start), H) and not m[unused].any()
    torch.testing.assert_close(m, moments[False][2], rtol=1e-4, atol=1e-9)
    # atol 1e-5 after 3 epochs at lr 1e-2: the key biases, whose gradient is 0 but for rounding
    # (softmax ignores a shift), wander 2e-6 apart between the two paths
    for (n, p), q in zip(models[False].named_parameters(), models[True].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=n)


def test_one_graph_per_length_and_again_after_thawing(tmp_path, monkeypatch):
    """graphed() is called once per (length bucket, set of training tensors): with unfreeze=1 over 2
    epochs every bucket of epoch 1 is captured again (new tensors train), without it never twice."""
    folder = tiny_folder(tmp_path)
    calls = []
    real = fastfit.graphed
    monkeypatch.setattr(fastfit, "graphed", lambda fn, keep, pool: calls.append(len(keep))
                        or real(fn, keep, pool))
    for unfreeze in (0, 1):
        calls.clear()
        cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=7, epochs=2,
                             unfreeze=unfreeze, max_train_sentences=120)
        fit_once(folder, cfg, graphs=True)
        tok = wordpiece.WordPiece.from_pretrained(folder)
        feats = corpora.read_splits(cfg, tok)[0]["train"].feats
        buckets = [{-(-max(len(feats[i].input_ids) for i in b) // 16) for b in epoch}
                   for epoch in finetune.batch_plan(feats, cfg, 2)]
        want = len(buckets[0]) + (len(buckets[1]) if unfreeze else len(buckets[1] - buckets[0]))
        assert len(calls) == want, (unfreeze, buckets)
        if unfreeze:
            assert calls[-1] > calls[0], "epoch 1 captures more tensors (moments) to keep"


HOST_READS = {  # ops that need a value on the host: a sync per update, and an error in a capture
    "aten._local_scalar_dense.default",  # .item(), float(t), bool(t), x[0-d tensor]
    "aten.nonzero.default",  # x[bool mask], a shape that depends on the data
    "aten.lift_fresh.default",  # torch.tensor(host values)
    "aten.is_nonzero.default", "aten.equal.default",
}


@pytest.mark.parametrize("stage", ["task", "masked-LM"])
def test_an_update_asks_nothing_of_the_host(tmp_path, monkeypatch, stage):
    """What a CUDA graph records must run on the device alone. Every op of every static-shape
    update (dropout on, unfreezing a layer an epoch so new updaters are made) is listed by a
    dispatch mode, on the CPU: none of them may read a value back to the host."""
    from torch.utils._python_dispatch import TorchDispatchMode
    seen = set()

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.add(str(func))
            return func(*args, **(kwargs or {}))

    def listed(fn, keep, pool):
        def run():
            with Ops():
                fn()
        return run
    monkeypatch.setattr(fastfit, "graphed", listed)
    folder = tiny_folder(tmp_path, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=7, epochs=2, unfreeze=1,
                         max_train_sentences=30)
    fit_once(folder, cfg, graphs=True, stage=stage, dropout=True)
    assert "aten._fused_adamw_.tensor_lr" in seen and "aten.bernoulli_.float" in seen
    assert not seen & HOST_READS, sorted(seen & HOST_READS)


@needs_cuda
@pytest.mark.parametrize("unfreeze", [0, 1])
def test_cuda_graph_replay_equals_eager(tmp_path, monkeypatch, unfreeze):
    """On a GPU, fp32, dropout off: 2 epochs replayed from CUDA graphs (one per length; with
    unfreezing captured again after thawing, without it the embeddings train from the start, the
    unused word rows set aside and decayed on the device) end at the eager loop's weights."""
    folder = tiny_folder(tmp_path)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=7, epochs=2,
                         unfreeze=unfreeze, max_train_sentences=120)
    monkeypatch.setattr(bert, "autocast", lambda device: contextlib.nullcontext())  # fp32
    tok = wordpiece.WordPiece.from_pretrained(folder)
    data, labels = corpora.read_splits(cfg, tok)
    feats = data["train"].feats
    out = []
    for graphs in (False, True):
        enc = bert.from_pretrained(folder).eval()
        torch.manual_seed(0)
        model = bert.TokenClassifier(enc, len(labels)).cuda().eval()
        model.train = lambda mode=True, m=model: m
        opt = finetune.AdamW(groups(model, cfg), lr=cfg.lr, eps=cfg.eps)
        on_gpu = finetune.tensorize(feats, tok, torch.device("cuda"))
        fit = fastfit.fit if graphs else finetune.fit
        fit(model, opt, on_gpu, finetune.batch_plan(feats, cfg, 2), cfg,
            lambda m, ids, mask, y: F.cross_entropy(
                m(ids, mask).float().flatten(0, 1), y.flatten(), ignore_index=-100),
            log=lambda s: None)
        out.append(model)
    for (n, p), q in zip(out[0].named_parameters(), out[1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5, msg=n)


@pytest.mark.parametrize("device", DEVICES)
def test_masks_are_drawn_afresh_at_each_replay(tmp_path, device):
    """The masked-LM stage draws its masks inside the update: recorded once (a CUDA graph on a
    GPU), every replay must choose other pieces, about 15% of them (what a draw chooses is
    test_mask_pieces_follows_bert_80_10_10's)."""
    tok = wordpiece.WordPiece.from_pretrained(tiny_folder(tmp_path))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(len(wordpiece.SPECIALS), len(tok), (16, 32), generator=gen).to(device)
    out = torch.zeros_like(ids)
    pool = torch.cuda.graph_pool_handle() if device == "cuda" else None
    replay = fastfit.graphed(lambda: out.copy_(finetune.mask_pieces(ids, tok)[1]), [out], pool)
    chosen = []
    for _ in range(3):
        replay()
        chosen.append(out != conll.IGNORE)
    assert not torch.equal(chosen[0], chosen[1]) and not torch.equal(chosen[1], chosen[2])
    share = torch.stack(chosen).float().mean().item()  # of 3 x 512 pieces
    assert 0.10 < share < 0.20, share


@needs_cuda
def test_lm_stage_replayed_from_cuda_graphs_learns(tmp_path, monkeypatch):
    """On a GPU, the masked-LM stage (Tables 5-6) replayed from CUDA graphs, fresh masks and dropout
    at each replay, lowers its loss over 3 epochs as the eager stage does, finite throughout, and
    returns the adapted BERT with its masked-LM head."""
    folder = tiny_folder(tmp_path, hidden=32, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1, lm_epochs=3)
    captured, real = [], fastfit.graphed
    monkeypatch.setattr(fastfit, "graphed", lambda fn, keep, pool: captured.append(len(keep))
                        or real(fn, keep, pool))
    tok = wordpiece.WordPiece.from_pretrained(folder)
    feats = corpora.read_splits(cfg, tok)[0]["train"].feats
    curves = {}
    for graphs in (False, True):
        log = []
        fit = fastfit.fit if graphs else finetune.fit
        lm = finetune.lm_finetune(cfg, tok, feats, fit, log.append)
        assert isinstance(lm, bert.Bert) and lm.mlm is not None
        curves[graphs] = [float(x) for line in log
                          for x in re.findall(r"masked-LM loss (\S+)", line)]
        assert bool(captured) == graphs, "graphs=True records, graphs=False does not"
    for graphs, losses in curves.items():
        assert len(losses) == 3 and all(map(math.isfinite, losses)), (graphs, losses)
        assert losses[-1] < losses[0], (graphs, curves)


def test_train_returns_its_scores_and_writes_nothing(tmp_path, monkeypatch):
    """train() -> Trained: scores, per-epoch dev F1, fit's counts, the model, its labels and the
    predictions; it writes no file (experiments.py records and saves)."""
    folder = tiny_folder(tmp_path, hidden=32)
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    cfg = FinetuneConfig(model=folder, data=TINY, scheme="bio", lr=1e-3, batch_size=8, epochs=2)
    log = []
    t = finetune.train(cfg, log=log.append)
    assert sorted(os.listdir(tmp_path)) == before
    tok = wordpiece.WordPiece.from_pretrained(folder)
    plan = finetune.batch_plan(corpora.read_splits(cfg, tok)[0]["train"].feats, cfg, 2)
    assert len(t.dev_f1) == 2 and t.dev_f1[-1] == t.dev["f1"]
    assert t.stats["updates"] == sum(map(len, plan)) and t.stats["time_s"] >= t.stats["train_s"]
    sents, pred = t.pred["test"]
    f1 = conlleval.evaluate([s.tags for s in sents], pred)["f1"]
    assert f1 == t.test["f1"] and t.labels[0] == "O"
    losses = [float(x) for line in log for x in re.findall(r" loss (\S+)", line)]
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("how", ["lr=1e30", "nan-loss"])
def test_nan_loss_stops_the_run(tmp_path, monkeypatch, how):
    """A loss that turns NaN (an absurd lr, or a loss made NaN from the 2nd batch on) stops the
    run with FloatingPointError at the next log point."""
    folder = tiny_folder(tmp_path)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1,
                         max_train_sentences=32)
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


def test_a_last_update_that_diverges_is_not_a_result(tmp_path):
    """A run of one update at lr 1e30: its only loss came before the update, so the loop saw none
    diverge, but the weights it leaves score NaN. The dev evaluation stops it (it was recorded
    with dev F1 0)."""
    folder = tiny_folder(tmp_path)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e30, batch_size=16, epochs=1,
                         max_train_sentences=4)
    with pytest.raises(FloatingPointError, match="scores are NaN/inf"):
        finetune.train(cfg, log=lambda s: None)


def test_max_len_beyond_the_models_positions_fails_before_training(tmp_path):
    """A model of 128 positions and --max_len 256: an error at once, not at the first dev window
    longer than 128 pieces after an epoch of training."""
    folder = tiny_folder(tmp_path)
    with pytest.raises(ValueError, match="--max_len=256: .* has 128 positions"):
        finetune.train(FinetuneConfig(model=folder, data=TINY, max_len=256), fit=None)


@pytest.mark.parametrize("epochs, thawed", [(1, range(0)), (2, range(9, 12))])
def test_unfrozen_epochs_leave_frozen_layers_bit_exact(tmp_path, epochs, thawed):
    """Real epochs of train() with L = 12, unfreeze = 3. After 1 epoch (the classifier alone)
    every tensor of the encoder is the checkpoint's bit for bit; after 2, every tensor of layers
    11-9 changed and layers 8-0 and the embeddings are still the checkpoint's bit for bit."""
    folder = tiny_folder(tmp_path, layers=12, hidden=8)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=epochs,
                         unfreeze=3, max_train_sentences=32)
    tuned = finetune.train(cfg, log=lambda s: None).model.bert.cpu().state_dict()
    for n, p in bert.from_pretrained(folder).state_dict().items():
        m = re.match(r"layers\.(\d+)\.", n)
        if m and int(m[1]) in thawed:
            assert not torch.equal(tuned[n], p), f"{n} is thawed in epoch 1 but did not change"
        else:
            assert torch.equal(tuned[n], p), f"{n} is frozen over {epochs} epochs but changed"


def test_a_word_too_long_for_a_window_names_its_file(tmp_path):
    """featurize knows the line, read_splits adds the file: dev's "line 3" alone leaves the user to
    guess among train, dev and test."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.txt", "test.txt"):
        (data / name).write_text(open(os.path.join(TINY, name)).read())
    (data / "valid.txt").write_text("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\n"
                                    + "-" * 10 + " : O O\n\n")
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8, data=str(data))
    cfg = FinetuneConfig(model=folder, data=str(data), max_len=8)
    tok = wordpiece.WordPiece.from_pretrained(folder)
    with pytest.raises(ValueError, match=re.escape(f"{data / 'valid.txt'}, line 4: word '---")):
        corpora.read_splits(cfg, tok)


# --- Masked-LM fine-tuning (Sec 4.2, Tables 5-6) ----------------------------------------------

class SpecialIds:
    cls_id, sep_id, pad_id, mask_id = 2, 3, 0, 4

    def __len__(self):
        return 1000


def test_mask_pieces_follows_bert_80_10_10():
    """BERT App. A.1: 15% of the non-special pieces are chosen; of those 80% become [MASK], 10% a
    random piece, 10% stay. Labels hold the original id exactly where chosen. With 200k pieces each
    share is within 1 point (the binomial std is under 0.2 points)."""
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
    assert abs(kept - 0.1) < 0.01 + 1 / 1000, (
        "10% stay (plus the random draws that hit the same id)")


class TinyIds(SpecialIds):
    def __len__(self):
        return 30  # tiny_classifier's vocab: random replacements stay inside it


def test_lm_loss_is_the_mean_over_chosen_pieces_and_0_without_any():
    """With pieces chosen, lm_loss is cross_entropy's own mean over them (the same masks, drawn
    again from the same seed); a batch with none chosen ([CLS] w [SEP], w not drawn, or nothing
    but special pieces) gives 0 and zero grads where the plain mean gives NaN."""
    model = tiny_classifier(mlm=True).bert
    ids = torch.randint(5, 30, (4, 12))
    ids[:, 0], ids[:, -1] = 2, 3
    mask = torch.ones_like(ids)
    torch.manual_seed(1)
    got = finetune.lm_loss(TinyIds())(model, ids, mask, None)
    torch.manual_seed(1)
    x, target = finetune.mask_pieces(ids, TinyIds())
    assert (target != -100).any()
    want = F.cross_entropy(model.mlm(model(x, mask)).flatten(0, 1), target.flatten())
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    only_special = torch.tensor([[2, 3, 0, 0]])
    x, target = finetune.mask_pieces(only_special, TinyIds())
    nan = F.cross_entropy(model.mlm(model(x, torch.ones_like(x))).flatten(0, 1), target.flatten())
    assert nan.isnan(), "the plain mean of nothing"
    loss = finetune.lm_loss(TinyIds())(model, only_special, torch.ones_like(only_special), None)
    loss.backward()
    assert loss.item() == 0.0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_lm_stage_on_one_short_window_never_stops_on_nan(tmp_path):
    """A training set of one one-word sentence: each masked-LM update sees [CLS] w [SEP], and w
    goes unchosen 85% of the time. Twenty epochs train to the end with a finite loss (the plain
    mean stopped this run with "loss became NaN" at its first update)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("valid.txt", "test.txt"):
        (data / name).write_text(open(os.path.join(TINY, name)).read())
    (data / "train.txt").write_text("-DOCSTART- -X- O O\n\nTokyo NNP I-NP I-LOC\n\n")
    folder = tiny_folder(tmp_path, layers=1, mlm=True)
    cfg = FinetuneConfig(model=folder, data=str(data), lr=1e-3, batch_size=8, lm_epochs=20)
    log = []
    with cpu_only():
        tok = wordpiece.WordPiece.from_pretrained(folder)
        feats = corpora.read_splits(cfg, tok)[0]["train"].feats
        finetune.lm_finetune(cfg, tok, feats, log=log.append)
    losses = [float(x) for line in log for x in re.findall(r"masked-LM loss (\S+)", line)]
    assert len(losses) == 20 and all(map(math.isfinite, losses)), losses
    assert 0.0 in losses and any(losses), "some updates had no piece chosen, some had one"


def test_lm_finetune_lowers_mlm_loss_and_a_run_starts_from_it(tmp_path, monkeypatch):
    """Three masked-LM epochs on en_tiny's text lower the loss; lm_finetune returns the adapted
    BERT, its MLM head on, and writes nothing. Saved (bert.save_pretrained), it is what
    train(cfg, encoder=folder) loads: over one epoch of --unfreeze 1 (the classifier alone
    trains) the task model's encoder is the saved stage's, tensor for tensor."""
    folder = tiny_folder(tmp_path, hidden=32, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1, lm_epochs=3)
    tok = wordpiece.WordPiece.from_pretrained(folder)
    feats = corpora.read_splits(cfg, tok)[0]["train"].feats
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    log = []
    with cpu_only():
        adapted = finetune.lm_finetune(cfg, tok, feats, log=log.append)
    assert sorted(os.listdir(tmp_path)) == before, "lm_finetune writes nothing"
    losses = [float(x) for line in log for x in re.findall(r"masked-LM loss (\S+)", line)]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    start = bert.from_pretrained(folder)
    assert isinstance(adapted, bert.Bert) and adapted.mlm is not None
    assert not torch.equal(adapted.layers[0].qkv.weight.cpu(), start.layers[0].qkv.weight)
    lm = str(tmp_path / "lm")
    bert.save_pretrained(adapted, lm)
    loaded, real_load = [], bert.from_pretrained
    monkeypatch.setattr(bert, "from_pretrained",
                        lambda name: loaded.append(name) or real_load(name))
    with cpu_only():
        t = finetune.train(replace(cfg, unfreeze=1), encoder=lm, log=lambda s: None)
    assert loaded == [lm], "the task run starts from the LM-adapted BERT"
    assert len(t.dev_f1) == 1
    ours = adapted.state_dict()
    for n, p in t.model.bert.state_dict().items():
        assert torch.equal(p.cpu(), ours[n].cpu()), n


def lm_setup(tmp_path, **kw):
    """A tiny BERT with an MLM head, a 1-epoch masked-LM config, an empty OUT -> (cfg, exp, the
    stage's folder OUT/lm-KEY)."""
    import experiments
    folder = tiny_folder(tmp_path, layers=1, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=8, epochs=1, lm_epochs=1,
                         **kw)
    exp = experiments.Experiment(out=str(tmp_path / "runs"))
    os.makedirs(exp.out)
    return cfg, exp, os.path.join(exp.out, f"lm-{experiments.stage_key(cfg)}")


def test_lm_stage_is_made_once_and_reused(tmp_path, monkeypatch):
    """experiments.lm_stage makes OUT/lm-KEY (KEY: experiments.stage_key) by training the stage,
    clearing on the way the temporary `.lm-KEY.XXXXXXXX.tmp` a killed maker left; OUT then holds
    that folder alone. A second call, and a task run differing only in what the stage does not
    read (scheme, epochs, Eq. 1's delta, unfreezing), get the same folder, training nothing."""
    import experiments
    cfg, exp, want = lm_setup(tmp_path)
    name = os.path.basename(want)
    leftover = os.path.join(exp.out, f".{name}.0123abcd.tmp")  # a maker killed mid-way
    os.makedirs(leftover)
    with open(os.path.join(leftover, "config.json"), "w") as f:
        f.write("{")
    old = time.time() - atomic.STALE_S - 10
    os.utime(leftover, (old, old))
    log = []
    with cpu_only():
        assert experiments.lm_stage(cfg, exp, log.append) == want
    assert sorted(os.listdir(exp.out)) == [name]
    assert any("masked-LM loss" in line for line in log)
    assert bert.from_pretrained(want).mlm is not None
    monkeypatch.setattr(finetune, "lm_finetune", None)  # training again would call it
    task = replace(cfg, scheme="bio", epochs=5, delta=2.6, unfreeze=3)
    for c in (cfg, task):
        log = []
        assert experiments.lm_stage(c, exp, log.append) == want and log == []
    assert sorted(os.listdir(exp.out)) == [name]


def test_a_partial_lm_folder_is_made_anew(tmp_path):
    """An OUT/lm-KEY without its weights (a hand, an older version) is trained again and
    replaced, not kept and then failed on."""
    import experiments
    cfg, exp, lm = lm_setup(tmp_path)
    os.makedirs(lm)
    with open(os.path.join(lm, "config.json"), "w") as f:
        f.write("{}")
    with cpu_only():
        assert experiments.lm_stage(cfg, exp, lambda s: None) == lm
    assert os.path.isfile(os.path.join(lm, "model.safetensors"))
    assert bert.from_pretrained(lm).mlm is not None


def test_lm_run_repeats_whether_or_not_its_lm_folder_exists(tmp_path):
    """The first run trains the LM stage, the second finds its folder: the same seed must still
    give the same task run, weight for weight (the LM stage's random draws may not shift the
    classifier's init or the dropout masks). On the CPU, where a run repeats bit for bit."""
    import experiments
    cfg, exp, lm = lm_setup(tmp_path)
    runs = []
    with cpu_only():
        for _ in range(2):  # trained, then found
            runs.append(finetune.train(cfg, experiments.lm_stage(cfg, exp, lambda s: None),
                                       log=lambda s: None))
            assert os.path.isfile(os.path.join(lm, "model.safetensors"))
    first, again = runs
    for (n, p), q in zip(first.model.named_parameters(), again.model.parameters()):
        assert torch.equal(p, q), n
    for k in ("dev", "test", "dev_f1"):
        assert getattr(again, k) == getattr(first, k), k


def test_lm_finetune_needs_an_mlm_head(tmp_path):
    folder = tiny_folder(tmp_path, layers=1, mlm=False)
    cfg = FinetuneConfig(model=folder, data=TINY, lm_epochs=1)
    tok = wordpiece.WordPiece.from_pretrained(folder)
    with pytest.raises(ValueError, match="no masked-LM head"):
        finetune.lm_finetune(cfg, tok, [])


@pytest.mark.parametrize("bias_correction", [True, False])
def test_training_steps_equal_hf(minilm_dir, bias_correction):
    """Real MiniLM weights, dropout off: 6 updates of finetune.fit (our TokenClassifier, BERT's
    clip, our AdamW; 6 epochs of one batch, so that after_epoch hands over each update's loss)
    against HF's BertForTokenClassification with the same groups, batches and lr: the same loss
    at every step and the same weights after the sixth. The HF side steps with torch.optim.AdamW
    (bias correction on) or, for BertAdam, finetune.adamw_update per tensor (the written-out
    reference; torch has no AdamW without bias correction)."""
    import transformers
    torch.manual_seed(0)
    ref = transformers.BertForTokenClassification.from_pretrained(minilm_dir, num_labels=9).eval()
    ours_model = bert.TokenClassifier(bert.from_pretrained(minilm_dir), 9).eval()
    ours_model.train = lambda mode=True: ours_model  # fit calls train(); keep dropout off
    ours_model.out.load_state_dict(ref.classifier.state_dict())
    cfg = FinetuneConfig(lr=1e-4, bias_correction=bias_correction, schedule="constant")
    opt = ours(ours_model, cfg, bias_correction)
    plain = [p for n, p in ref.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in ref.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    ref_groups = [dict(params=decay, weight_decay=0.01), dict(params=plain, weight_decay=0.0)]
    if bias_correction:
        ref_opt = torch.optim.AdamW(ref_groups, lr=cfg.lr, eps=cfg.eps)
    else:
        ref_opt = finetune.AdamW(ref_groups, lr=cfg.lr, eps=cfg.eps, fused=False)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([11, 9, 7, 11, 3] * 6)
    mask = (torch.arange(11) < lengths[:, None]).long()
    ids = torch.randint(1000, 30000, (30, 11), generator=gen).masked_fill(mask == 0, 0)
    y = torch.randint(0, 9, (30, 11), generator=gen).masked_fill(mask == 0, -100)
    plan = [[list(range(5 * step, 5 * step + 5))] for step in range(6)]
    losses = []
    finetune.fit(ours_model, opt, finetune.Tensors(ids, y, lengths, 0), plan, cfg,
                 finetune.task_loss, log=lambda s: None,
                 after_epoch=lambda epoch, loss: losses.append(loss))
    for step, rows in enumerate(plan):
        b = rows[0]
        ref_loss = F.cross_entropy(
            ref(input_ids=ids[b], attention_mask=mask[b]).logits.flatten(0, 1),
            y[b].flatten(), ignore_index=-100)
        assert losses[step] == pytest.approx(ref_loss.item(), rel=1e-5), step
        ref_loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
    theirs = dict(ref.named_parameters())
    for n, p in ours_model.named_parameters():
        if n == "bert.layers.0.qkv.weight":
            q = torch.cat([theirs[f"bert.encoder.layer.0.attention.self.{k}.weight"]
                           for k in ("query", "key", "value")])
        elif n == "out.weight":
            q = theirs["classifier.weight"]
        else:
            continue
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)
    moved = ours_model.out.weight - ref.classifier.weight.detach()
    assert moved.abs().max() < 1e-5


def test_tensorize_pads_each_window_and_fastfit_adds_the_dummy_row(tmp_path):
    """tensorize builds its tensors from one flat list of pieces: row by row, as written out here,
    each window is its pieces then [PAD], its labels then -100; fastfit's with_dummy adds a last
    row, [CLS] alone with no label, that fills short batches."""
    folder = tiny_folder(tmp_path, layers=1)
    tok = wordpiece.WordPiece.from_pretrained(folder)
    for max_len in (8, 128):  # many windows per sentence, and one
        feats = corpora.read_splits(FinetuneConfig(model=folder, data=TINY, max_len=max_len),
                                     tok)[0]["train"].feats
        t = finetune.tensorize(feats, tok, torch.device("cpu"))
        T = max(len(f.input_ids) for f in feats)
        assert t.ids.shape == t.labels.shape == (len(feats), T) and t.pad == tok.pad_id
        for r, f in enumerate(feats):
            n = len(f.input_ids)
            assert t.ids[r].tolist() == f.input_ids + [tok.pad_id] * (T - n)
            assert t.labels[r].tolist() == f.labels + [-100] * (T - len(f.labels))
            assert t.lengths[r] == n
        d = fastfit.with_dummy(t)
        assert torch.equal(d.ids[:-1], t.ids) and torch.equal(d.labels[:-1], t.labels)
        assert d.ids[-1].tolist() == [tok.cls_id] + [tok.pad_id] * (T - 1)
        assert d.labels[-1].tolist() == [-100] * T and d.lengths[-1] == 1


def test_train_says_at_start_when_unfreezing_cannot_finish(tmp_path):
    """2 layers, --unfreeze 1 over 2 epochs: the classifier alone trains in epoch 1, layer 1 joins
    in epoch 2, and layer 0 with the embeddings would in epoch 3: before the first update one line
    names the two that never train."""
    folder = bert_folder(str(tmp_path / "b"), layers=2, hidden=8)
    cfg = FinetuneConfig(model=folder, data=TINY, unfreeze=1, epochs=2, max_train_sentences=16,
                         batch_size=8, lr=1e-3)
    lines = []
    with cpu_only():
        finetune.train(cfg, log=lines.append)
    first = next(i for i, line in enumerate(lines) if line.startswith("epoch 1/2"))
    warned = [i for i, line in enumerate(lines) if line.startswith("warning:")]
    assert len(warned) == 1 and warned[0] < first
    assert lines[warned[0]].startswith("warning: --unfreeze 1 over 2 epochs never trains layer 0, "
                                       "embeddings (Sec 3.3: "), lines[warned[0]]


def test_clip_each_tensor_as_pytorch_pretrained_berts_bertadam():
    """--clip_each: every gradient scaled to norm 1.0 on its own, as pytorch-pretrained-BERT's
    BertAdam.step calls clip_grad_norm_(p, max_grad_norm) per parameter: a gradient of norm 5
    becomes norm 1, one of norm 0.5 stays. The default clips the global norm (google-research/bert's
    clip_by_global_norm): both shrink by the same factor."""
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(3, 4)) for _ in range(3)]
    for p, norm in zip(ps, (5.0, 0.5, 2.0)):
        g = torch.randn(3, 4)
        p.grad = g * norm / g.norm()
    ref = [p.grad.clone() for p in ps]
    want = []
    for g in ref:
        q = torch.nn.Parameter(torch.zeros_like(g))
        q.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(q, 1.0)
        want.append(q.grad)
    finetune.clip_grads(ps, 1.0, each=True)
    for p, w in zip(ps, want):
        torch.testing.assert_close(p.grad, w)
    assert [round(float(p.grad.norm()), 4) for p in ps] == [1.0, 0.5, 1.0]
    for p, g in zip(ps, ref):
        p.grad = g.clone()
    finetune.clip_grads(ps, 1.0)
    total = math.sqrt(sum(float(g.norm()) ** 2 for g in ref))
    for p, g in zip(ps, ref):
        torch.testing.assert_close(p.grad, g / (total + 1e-6))


def one_row_fit(monkeypatch, plan, loss_at, after_epoch=None):
    """finetune.fit over `plan` (batches of row 0, a window of 10 pieces) with a loss that is
    loss_at(update), 1-based, and a fake clock that ticks 1 s an update -> (log lines, stats)."""
    now = [0.0]
    monkeypatch.setattr(finetune.time, "time", lambda: now[0])
    model = tiny_classifier(layers=1)
    ids = torch.randint(5, 30, (1, 10), generator=torch.Generator().manual_seed(0))
    data = finetune.Tensors(ids, torch.zeros_like(ids), torch.tensor([10]), 0)
    steps = []

    def loss_of(model, ids, mask, y):
        now[0] += 1.0  # this update takes 1 s
        steps.append(len(steps) + 1)
        return model.out.bias.sum() * 0 + loss_at(steps[-1])

    def after(epoch, loss):
        after_epoch(epoch, loss)
        now[0] += 100.0  # the dev evaluation: 100 s that are no training time
    opt = finetune.AdamW(groups(model, FinetuneConfig()), lr=1e-3)
    lines = []
    stats = finetune.fit(model, opt, data, plan, FinetuneConfig(), loss_of, log=lines.append,
                         after_epoch=after if after_epoch else None)
    return lines, stats


def test_fit_logs_the_loss_pace_and_time_left_every_50_updates(monkeypatch):
    """finetune.Meter through finetune.fit: 2 epochs x 60 updates, each of one 10-piece window
    taking 1 s (a fake clock), the loss at update t being t, a 100 s dev evaluation after each
    epoch. A line every 50 updates and at each epoch's end: the update over the whole run (of
    120), the mean loss since the last line, tokens/s, and the run's time left at the pace so far,
    the evaluations not counted:
        update 50:  loss mean(1..50) = 25.5,    10 tok/s, 70 updates left -> "~70 s"
        update 60:  loss mean(51..60) = 55.5,   60 left -> "~60 s"; the epoch's loss 30.5
        update 100: loss mean(61..100) = 80.5,  100 s trained (not 200): 20 left -> "~20 s"
        update 120: loss mean(101..120) = 110.5, "~0 s"; the epoch's loss mean(61..120) = 90.5
    fit's stats: 120 updates, 1,200 tokens, 120 s of training."""
    epoch_losses = []
    lines, stats = one_row_fit(monkeypatch, [[[0]] * 60, [[0]] * 60], float,
                               lambda epoch, loss: epoch_losses.append((epoch, loss)))
    assert lines == ["epoch 1/2 update 50/120 loss 25.5000 10 tok/s, run ~70 s left",
                     "epoch 1/2 update 60/120 loss 55.5000 10 tok/s, run ~60 s left",
                     "epoch 2/2 update 100/120 loss 80.5000 10 tok/s, run ~20 s left",
                     "epoch 2/2 update 120/120 loss 110.5000 10 tok/s, run ~0 s left"]
    assert epoch_losses == [(0, 30.5), (1, 90.5)]
    assert stats == dict(updates=120, tokens=1200, train_s=120.0)


def test_meter_speaks_minutes_and_thousands():
    """finetune.duration: 45 -> "45 s", 200 -> "3.3 min", 7200 -> "2.0 h"; tokens/s with commas."""
    assert [finetune.duration(s) for s in (45, 200, 7200)] == ["45 s", "3.3 min", "2.0 h"]
    lines = []
    meter = finetune.Meter([[[0]] * 2], lines.append)
    meter.seconds = lambda: 0.5
    meter.update(0, 1, 6000, torch.tensor(3.0))
    assert lines == []  # not a 50th update, not the epoch's end
    meter.update(0, 2, 6000, torch.tensor(5.0))
    assert lines == ["epoch 1/1 update 2/2 loss 2.5000 24,000 tok/s, run ~0 s left"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fit_stops_on_a_nan_loss_naming_the_update(monkeypatch, bad):
    """A loss that turns NaN (or inf) at update 57 of 2 x 60: the line at update 50 is written,
    then fit stops at the next log point, the epoch's end, with FloatingPointError "the loss
    became NaN/inf by update 60", before the dev evaluation (a diverged run is never scored)."""
    evaluated = []
    with pytest.raises(FloatingPointError, match=r"the loss became NaN/inf by update 60: ") as e:
        one_row_fit(monkeypatch, [[[0]] * 60, [[0]] * 60],
                    lambda t: bad if t >= 57 else 1.0, lambda *a: evaluated.append(a))
    assert "lower --lr" in str(e.value) and evaluated == []
