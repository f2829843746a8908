"""experiments.py: results records, claims, workers and shards, the Table 1 grid, tables, predict
and the command line, on the CPU with a random BERT (tests/conftest.py) or a stand-in for train.

References: the hand-worked grid and table numbers below; transformers for the HF layout of
saved runs (tests/test_bert.py holds the logits check)."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch

import bert
import conll
import conlleval
import corpora
import experiments
import records
import finetune
import tables
import tagger
import wordpiece
from conftest import FIXTURES, ROOT, TINY, bert_folder, cpu_only
from experiments import Experiment
from finetune import FinetuneConfig


@pytest.fixture(scope="module", autouse=True)
def one_thread_on_the_cpu():
    """Tiny models: one thread is faster than two on a shared 2-core machine. And the CPU even
    where there is a GPU: these tests are about records, claims, workers, shards, tables and
    command lines, and several compare two runs (or a run and a later `predict`) tag for tag, which
    holds bit for bit on the CPU only. The GPU's training path is tested in test_finetune.py."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with cpu_only():
        yield
    torch.set_num_threads(n)


def test_run_one_records_and_writes_the_run(trained):
    """results.jsonl's one line is the returned record; the run folder holds both prediction files,
    whose conlleval F1 is the recorded one, and the saved tagger."""
    cfg, exp, rec = trained
    assert records.read_results(exp.out) == [json.loads(json.dumps(rec))]
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    for split in ("dev", "test"):
        pred = conll.read_conll(os.path.join(run_dir, f"{split}.pred.txt"))
        gold = conll.read_conll(corpora.splits(TINY)[split])
        f1 = conlleval.evaluate([s.tags for s in gold], [s.tags for s in pred])["f1"]
        assert f1 == rec[split]["f1"], split
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name


def test_same_seed_same_result(trained, tmp_path):
    """On the CPU a run is repeatable: the same config elsewhere gives the same scores."""
    cfg, exp, rec = trained
    with cpu_only():
        again = experiments.run_one(cfg, replace(exp, out=str(tmp_path), save=False),
                                    lambda s: None)
    for k in ("dev", "test", "dev_f1_per_epoch"):
        assert again[k] == rec[k], k


def test_run_one_skips_recorded_and_claimed_runs(trained, monkeypatch):
    """A recorded config returns its record without training; a config whose claim another open
    file holds (another process, as far as flock is concerned) is skipped with None; neither adds a
    line. Another seed trains and adds one."""
    cfg, exp, rec = trained
    n = len(records.read_results(exp.out))
    with monkeypatch.context() as mp:
        mp.setattr(finetune, "train", lambda *a, **k: pytest.fail("trained a skipped run"))
        log = []
        assert experiments.run_one(cfg, exp, log=log.append) == json.loads(json.dumps(rec))
        other = replace(cfg, seed=7)
        with records.claim(exp.out, records.run_key(other)) as mine:
            assert mine
            assert experiments.run_one(other, exp, log=log.append) is None
    assert "skipped" in log[0] and "another process" in log[1]
    assert len(records.read_results(exp.out)) == n
    new = experiments.run_one(replace(cfg, seed=2), replace(exp, save=False), lambda s: None)
    keys = [r["key"] for r in records.read_results(exp.out)]
    assert len(keys) == n + 1 and keys[-1] == new["key"] != rec["key"]


def test_predict_conll_file_round_trip(trained, tmp_path):
    """predict() on the saved run and the test file writes what run_one wrote, and reports the
    recorded test F1; a second call never overwrites: it picks test.txt.pred-2.txt."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    test = corpora.splits(TINY)["test"]
    out = str(tmp_path / "test.pred.txt")
    report = tagger.predict(run_dir, test, output=out)
    with open(out, "rb") as f, open(os.path.join(run_dir, "test.pred.txt"), "rb") as g:
        assert f.read() == g.read()
    assert f"FB1: {rec['test']['f1']:6.2f}" in report
    with pytest.raises(ValueError, match="exists"):
        tagger.predict(run_dir, test, output=out)
    os.chdir(tmp_path)
    first = tagger.predict(run_dir, test)
    second = tagger.predict(run_dir, test)
    assert "test.txt.pred.txt" in first and "test.txt.pred-2.txt" in second


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_predict_on_a_gpu_writes_the_runs_own_predictions(tmp_path, monkeypatch):
    """The round trip above on a GPU, under bf16, where other batches could round a near tie the
    other way: a run trained there (its test split 320 sentences, several evaluation batches) and
    `predict` on its saved folder write the same test predictions, byte for byte."""
    monkeypatch.setattr(bert, "pick_device", lambda: torch.device("cuda"))
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    shutil.copy(data / "train.txt", data / "test.txt")
    folder = bert_folder(str(tmp_path / "bert"), layers=2, hidden=32)
    cfg = FinetuneConfig(model=folder, data=str(data), scheme="bio", lr=1e-3, batch_size=8,
                         epochs=3)
    rec = experiments.run_one(cfg, Experiment(out=str(tmp_path / "runs")), log=lambda s: None)
    assert rec["device"] == "cuda"
    run_dir = tmp_path / "runs" / f"run-{rec['key']}"
    tagger.predict(str(run_dir), str(data / "test.txt"), output=str(tmp_path / "again"))
    assert (tmp_path / "again").read_bytes() == (run_dir / "test.pred.txt").read_bytes()


def test_predict_keeps_the_models_scheme_for_unlabelled_input(trained, tmp_path):
    """A words-only file and an all-O file carry no scheme of their own: predictions come in the
    model's (BIO here), and the words-only output is "word TAG" lines. A labelled IOB1 file gets
    IOB1 predictions, as conlleval needs."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    gold = conll.read_conll(corpora.splits(TINY)["test"])
    words = tmp_path / "words.txt"
    words.write_text("".join("".join(w + "\n" for w in s.words) + "\n" for s in gold))
    allo = tmp_path / "allo.txt"
    allo.write_text("".join("".join(f"{w} O\n" for w in s.words) + "\n" for s in gold))
    tagger.predict(run_dir, str(words), output=str(tmp_path / "w.out"))
    tagger.predict(run_dir, str(allo), output=str(tmp_path / "o.out"))
    lines = (tmp_path / "w.out").read_text().split("\n")
    assert all(len(x.split(" ")) == 2 for x in lines if x)
    tags_w = [x.split(" ")[1] for x in lines if x]
    tags_o = [x.split(" ")[2] for x in (tmp_path / "o.out").read_text().split("\n") if x
              and not x.startswith("-DOCSTART-")]
    assert tags_w == tags_o and conll.detect_scheme([tags_w]) == "bio"
    iob1 = conll.read_conll(os.path.join(run_dir, "test.pred.txt"))
    assert conll.detect_scheme(s.tags for s in iob1) == "iob1"


def test_predict_text(trained, tmp_path):
    """Text mode: one sentence a line, split at spaces and punctuation ("17,000." -> 17 , 000 .),
    "word TAG" lines in the training scheme (BIO), a blank line after each input line, so a blank
    input line gives an empty block and output lines up with input. Test sentences typed as text
    get the tags the CoNLL mode gave them. Empty input gives empty output; a latin-1 file is read
    as latin-1 (detected as CoNLL files are), one mixing UTF-8 and a stray byte is an error naming
    the file and line."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    gold = conll.read_conll(corpora.splits(TINY)["test"])
    pred = conll.read_conll(os.path.join(run_dir, "test.pred.txt"))
    plain = [k for k, s in enumerate(gold)
             if all(wordpiece.split_punct(w) == [w] for w in s.words)][:3]
    path = tmp_path / "in.txt"
    lines = [" ".join(gold[k].words) for k in plain] + ["", "Arafat paid 17,000."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tagger.predict(run_dir, str(path), text=True)
    blocks, cur = [], []
    for line in out.split("\n")[:-1]:  # a blank line ends each input line's block
        if line:
            cur.append(line.split(" "))
        else:
            blocks, cur = blocks + [cur], []
    assert out.endswith("\n\n") and cur == [] and len(blocks) == len(lines)
    assert blocks[len(plain)] == [], "the blank input line"
    assert [w for w, _ in blocks[-1]] == ["Arafat", "paid", "17", ",", "000", "."]
    for k, b in zip(plain, blocks):
        assert [w for w, _ in b] == gold[k].words
        assert [t for _, t in b] == conll.to_bio(pred[k].tags), f"test sentence {k}"
    (tmp_path / "empty.txt").write_text("")
    assert tagger.predict(run_dir, str(tmp_path / "empty.txt"), text=True) == ""
    (tmp_path / "latin.txt").write_bytes(b"Angela\nM\xfcller sagt\n")  # detected, as CoNLL is
    out = tagger.predict(run_dir, str(tmp_path / "latin.txt"), text=True)
    assert [x.split(" ")[0] for x in out.split("\n") if x] == ["Angela", "Müller", "sagt"]
    (tmp_path / "mixed.txt").write_bytes("Köln\nM\xfcller sagt\n".encode("latin-1")
                                         .replace(b"K\xf6ln", "Köln".encode()))
    with pytest.raises(ValueError, match=r"mixed.txt:2: byte 0xfc is not valid UTF-8"):
        tagger.predict(run_dir, str(tmp_path / "mixed.txt"), text=True)


@pytest.mark.parametrize("given", [True, False])
def test_predict_never_replaces_a_file_that_appears_while_it_tags(trained, tmp_path, monkeypatch,
                                                                 given):
    """The output is checked before the model loads, but written only as a new file: one that
    appears meanwhile (another predict, a user) is kept. --output: an error; the default name:
    the next free one."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / ("mine.txt" if given else "test.txt.pred.txt")
    load = tagger.load_tagger
    monkeypatch.setattr(tagger, "load_tagger",
                        lambda *a: out.write_text("PRECIOUS") and load(*a))
    test = corpora.splits(TINY)["test"]
    if given:
        with pytest.raises(ValueError, match="mine.txt appeared while tagging"):
            tagger.predict(run_dir, test, output=str(out))
    else:
        assert "test.txt.pred-2.txt" in tagger.predict(run_dir, test)
    assert out.read_text() == "PRECIOUS"
    written = [out.name] + ["test.txt.pred-2.txt"] * (not given)
    assert sorted(os.listdir(tmp_path)) == sorted(written)


def test_predict_text_to_an_output_file_and_its_input_checks(trained, tmp_path):
    """--text --output writes the lines it would print; a BOM is not part of the first word; an
    unknown --encoding, and a word too long for the model's windows, are errors naming what to
    fix."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffArafat met Peter Blackburn .\n".encode())
    printed = tagger.predict(run_dir, str(path), text=True)
    assert printed.split(" ")[0] == "Arafat"
    said = tagger.predict(run_dir, str(path), text=True, output=str(tmp_path / "o.txt"))
    assert said == f"(predictions in {tmp_path / 'o.txt'})\n"
    assert (tmp_path / "o.txt").read_text() == printed
    with pytest.raises(ValueError, match="unknown encoding 'foo'"):
        tagger.predict(run_dir, str(path), text=True, encoding="foo")
    path.write_text("Arafat\n" + "-" * 200 + "\n")  # CoNLL, words only: "-" x 200 is one word
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: word '---")):
        tagger.predict(run_dir, str(path))


def test_saved_run_is_an_hf_token_classifier(trained):
    """transformers loads the run folder as it is and gives our logits (fp32, eval)."""
    transformers = pytest.importorskip("transformers")
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    hf = transformers.AutoModelForTokenClassification.from_pretrained(run_dir).eval()
    t = tagger.load_tagger(run_dir, torch.device("cpu"))
    ids = torch.tensor([[2, 10, 11, 12, 3, 0], [2, 13, 14, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        ours = t.model(ids, mask)
        theirs = hf(input_ids=ids, attention_mask=mask).logits
    assert (ours - theirs).abs().max() <= 1e-4
    assert hf.config.id2label[0] == "O" and t.labels == [hf.config.id2label[i]
                                                         for i in range(len(t.labels))]


def test_conll_tag_maps_hub_label_names():
    """IOB1/BIO stay; IOBES S- -> B-, E- -> I-; a bare type is an I- (IO tagging)."""
    names = ("O", "B-PER", "I-LOC", "S-ORG", "E-ORG", "MISC", "B_PER")
    got = [tagger.conll_tag(x) for x in names]
    assert got == ["O", "B-PER", "I-LOC", "B-ORG", "I-ORG", "I-MISC", "B-PER"]


# ---------------------------------------------------------------------------------------------
# Records: one per key, damaged lines named and kept.

def record(key, f1=90.0, **extra):
    """A results.jsonl record as train() makes one, with only what the tables read."""
    return dict(key=key, config=asdict(FinetuneConfig()), dev=dict(f1=f1), test=dict(f1=f1),
                **extra)


def _append_many(out, start):
    for i in range(start, start + 40):
        records.append_result(out, record(str(i)))


def test_append_result_from_two_processes_loses_nothing_and_keeps_one_per_key(tmp_path):
    """Two processes append 40 records each to one results.jsonl at the same time, 20 of them with
    keys the other also writes: all 60 keys are there, each once."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    ps = [ctx.Process(target=_append_many, args=(str(tmp_path), start)) for start in (0, 20)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    with open(tmp_path / "results.jsonl") as f:
        keys = sorted(int(json.loads(line)["key"]) for line in f)
    assert keys == list(range(60))


def test_damaged_results_line_is_named_skipped_and_kept(tmp_path):
    """A torn line in results.jsonl: a warning naming file:line, the other records read, the line
    still on disk after the next append; a table of a folder with no records is an error."""
    path = tmp_path / "results.jsonl"
    a, c = (json.dumps(record(k)) for k in "ac")
    path.write_text(f'{a}\n{{"key": "b", "x\n{c}\n')
    warnings = []
    got = records.read_results(str(tmp_path), warnings.append)
    assert [r["key"] for r in got] == ["a", "c"]
    assert warnings == [f"warning: {path}:2: not a result record (not JSON); skipped (left in "
                        f"the file)"]
    records.append_result(str(tmp_path), record("d"))
    assert path.read_text().split("\n")[1] == '{"key": "b", "x'
    with pytest.raises(ValueError, match="no results.jsonl records"):
        tables.table(str(tmp_path / "empty"))


def test_damaged_bytes_stay_on_disk_and_later_runs_are_recorded(tmp_path):
    """A line with invalid UTF-8 and a stray \\r: named (its own line number only), skipped, and
    kept byte for byte after the next append, which is recorded (it used to fail on decoding)."""
    path = tmp_path / "results.jsonl"
    a, c = (json.dumps(record(k)).encode() for k in "ac")
    damaged = b'{"key": "b", \xff\xfe\r "x'
    path.write_bytes(a + b"\n" + damaged + b"\n" + c + b"\n")
    warnings = []

    def keys():
        return [r["key"] for r in records.read_results(str(tmp_path), warnings.append)]
    assert keys() == ["a", "c"]
    assert warnings == [f"warning: {path}:2: not a result record (not JSON); skipped (left in "
                        f"the file)"]
    records.append_result(str(tmp_path), record("d"))
    assert path.read_bytes().split(b"\n")[:3] == [a, damaged, c]
    assert keys() == list("acd")


WHOLE = dict(key="x", config=asdict(FinetuneConfig()), dev={"f1": 90.0}, test={"f1": 1})


@pytest.mark.parametrize("line, why", [
    ({"key": "x", "dev": {"f1": 90.0}, "test": {"f1": 90.0}}, "no config object"),
    ({"key": "x", "config": {}, "dev": {"f1": 90.0}},
     "test.f1 is None, expected a finite number in 0-100"),
    ({"key": "x", "config": {}, "dev": {"f1": "90"}, "test": {"f1": 1}},
     "dev.f1 is '90', expected a finite number in 0-100"),
    (WHOLE | dict(dev={"f1": 10 ** 400}),
     "dev.f1 is 10000000000000000000..., expected a finite number in 0-100"),
    (WHOLE | dict(test={"f1": 100.5}), "test.f1 is 100.5, expected a finite number in 0-100"),
    (WHOLE | dict(data_fingerprint=["a"]), "data_fingerprint is ['a'], expected str"),
    (WHOLE | dict(model_id={}), "model_id is {}, expected str"),
    (WHOLE | dict(config=WHOLE["config"] | dict(scheme="xyz")),
     "config: --scheme=xyz: expected one of iob1, bio"),
    (WHOLE | dict(config=WHOLE["config"] | dict(lr=-1)), "config: --lr=-1.0: lr must be > 0"),
    ({"key": 7, "config": {}, "dev": {"f1": 90.0}, "test": {"f1": 1}},
     "not an object with a string key"),
    (WHOLE | dict(config=WHOLE["config"] | dict(lr="1e-4")), "config.lr is '1e-4', expected float"),
    (WHOLE | dict(config=WHOLE["config"] | dict(model=None)), "config.model is None, expected str"),
    (WHOLE | dict(dev={"f1": float("nan")}), "dev.f1 is nan, expected a finite number in 0-100"),
    (WHOLE | dict(config=WHOLE["config"] | dict(epochs=True)),
     "config.epochs is True, expected int"),
    (WHOLE | dict(config={k: v for k, v in WHOLE["config"].items() if k != "level"}),
     "config.level is None, expected str")])
def test_a_record_the_table_cannot_use_is_named_and_skipped(tmp_path, line, why):
    """Valid JSON that is not a whole record, with each field of its type, is a damaged line like
    any other, and the warning says what is wrong: the table of the others is printed (a record
    with "lr": "1e-4", "model": null or an f1 of NaN used to pass and crash the table)."""
    (tmp_path / "results.jsonl").write_text(json.dumps(line) + "\n")
    cfg = FinetuneConfig(data=TINY)
    records.append_result(str(tmp_path), record(records.run_key(cfg)) | dict(config=asdict(cfg)))
    warnings = []
    assert len(records.read_results(str(tmp_path), warnings.append)) == 1
    assert warnings == [f"warning: {tmp_path}/results.jsonl:1: not a result record ({why}); "
                        f"skipped (left in the file)"]
    assert "| en | bert-base-multilingual-cased | IOB1 |" in tables.table(str(tmp_path))


def test_model_dir_with_and_without_slash_is_one_row(tmp_path):
    """"/models/m" and "/models/m/" are one run key (FinetuneConfig.key), so one table row."""
    for seed, model in ((1, "/models/m"), (2, "/models/m/")):
        cfg = FinetuneConfig(model=model, data=TINY, seed=seed)
        records.append_result(str(tmp_path),
                              record(records.run_key(cfg)) | dict(config=asdict(cfg)))
    rows = [r for r in tables.table(str(tmp_path)).split("\n") if r.startswith("| en ")]
    assert len(rows) == 1 and "| m | IOB1 |" in rows[0] and "| 2 |" in rows[0], rows


def test_a_model_folder_and_a_symlink_to_it_are_one_run(tmp_path):
    """A model given by its folder, through a symlink, or as ./folder is one run key, and its
    records pool in one table row."""
    real = tmp_path / "models" / "m"
    real.mkdir(parents=True)
    os.symlink(real, tmp_path / "link")
    names = [str(real), str(tmp_path / "link"), str(tmp_path / "link") + "/",
             os.path.relpath(real)]
    cfgs = [FinetuneConfig(model=m, data=TINY, seed=1) for m in names]
    assert len({records.run_key(c) for c in cfgs}) == 1
    out = tmp_path / "out"
    for seed, m in enumerate(names, start=1):
        cfg = FinetuneConfig(model=m, data=TINY, seed=seed)
        records.append_result(str(out), record(records.run_key(cfg)) | dict(config=asdict(cfg)))
    rows = [r for r in tables.table(str(out)).split("\n") if r.startswith("| en ")]
    assert len(rows) == 1 and "| 4 |" in rows[0], rows


# ---------------------------------------------------------------------------------------------
# The grid, with a stand-in for train(): fast and hand-worked.

def fake_train(calls, fail_at=0):
    """A train() that scores a config at once. dev F1 = 80 + {2e-5: 0, 3e-5: 2, 5e-5: 1}[lr] +
    (epochs == 4) - 0.5 (batch == 32) + 0.1 seed, test F1 = dev - 1; the setting (32, 5e-5, 3)
    instead gets +15 on seed 1 and -15 on seed 2: the best single run (95.6) but mean dev 80.65.
    Best mean dev (2 seeds): batch 16, lr 3e-5, 4 epochs, 83.15."""
    def train(cfg, fit=None, read=None, lm_folder=None, eval_batch_size=0, log=print):
        calls.append(cfg)
        if len(calls) == fail_at:
            raise KeyboardInterrupt("killed")
        dev = 80 + {2e-5: 0, 3e-5: 2, 5e-5: 1}[cfg.lr] + (cfg.epochs == 4)
        dev += 0.1 * cfg.seed - 0.5 * (cfg.batch_size == 32)
        if (cfg.batch_size, cfg.lr, cfg.epochs) == (32, 5e-5, 3):
            dev += 15 if cfg.seed == 1 else -15
        stats = dict(updates=1, tokens=1, train_s=1.0, time_s=1.0)
        return finetune.Trained(None, None, [], dict(f1=dev), dict(f1=dev - 1), [dev], {}, stats)
    return train


def test_grid_picks_best_mean_dev_and_resumes(tmp_path, monkeypatch):
    """12 settings x 2 seeds = 24 runs, save off. Killed at the 7th run, the restarted grid runs
    only the 18 not recorded; the choice is the best mean dev, its 2 runs' test F1 82.1 and 82.2."""
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), seeds=2, save=False)
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls, fail_at=7))
    with pytest.raises(KeyboardInterrupt):
        experiments.grid(cfg, exp, log=lambda s: None)
    assert len(records.read_results(exp.out)) == 6
    calls.clear()
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    best, runs = experiments.grid(cfg, exp, log=lambda s: None)
    assert len(calls) == 18
    done = records.read_results(exp.out)
    settings = {tuple(r["config"][k] for k in ("batch_size", "lr", "epochs", "seed")) for r in done}
    assert len(done) == len(settings) == 24 and {s[3] for s in settings} == {1, 2}
    assert (best.batch_size, best.lr, best.epochs) == (16, 3e-5, 4)
    assert [r["config"]["seed"] for r in runs] == [1, 2]
    assert [r["test"]["f1"] for r in runs] == pytest.approx([82.1, 82.2])


def test_shards_split_the_grid_without_overlap(tmp_path, monkeypatch):
    """--shard=0/3, 1/3, 2/3 run disjoint thirds of the 24 runs; before the last shard the choice
    waits; after it the table is the one a single process prints."""
    cfg = FinetuneConfig(data=TINY)
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    exp = Experiment(out=str(tmp_path / "split"), seeds=2, save=False)
    for i in range(3):
        before = len(calls)
        got = experiments.grid(cfg, replace(exp, shard=f"{i}/3"), log=lambda s: None)
        assert len(calls) - before == 8 and (got is None) == (i < 2)
    assert len({records.run_key(c) for c in calls}) == 24
    whole = Experiment(out=str(tmp_path / "whole"), seeds=2, save=False)
    experiments.grid(cfg, whole, log=lambda s: None)
    assert tables.table(exp.out) == tables.table(whole.out)


def test_workers_and_shards_train_each_run_once(tmp_path):
    """4 real runs (tiny BERT, seeds 1-4) split as two shards: --shard=0/2 by two worker
    processes (--workers=2), --shard=1/2 in this one. Each run is recorded once, the first shard
    leaves the choice to the second, and the table equals the one of the 4 runs done by one
    process."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=16, epochs=1,
                         max_train_sentences=48)
    exp = Experiment(out=str(tmp_path / "split"), seeds=4, save=False)
    assert experiments.grid(cfg, replace(exp, shard="0/2", workers=2), full=False,
                            log=lambda s: None) is None
    assert sorted(r["config"]["seed"] for r in records.read_results(exp.out)) == [1, 3]
    assert experiments.grid(cfg, replace(exp, shard="1/2", workers=1), full=False,
                            log=lambda s: None) is not None
    recs = records.read_results(exp.out)
    with open(os.path.join(exp.out, "results.jsonl")) as f:
        assert len(f.readlines()) == len(recs) == 4
    assert sorted(r["config"]["seed"] for r in recs) == [1, 2, 3, 4]
    one = replace(exp, out=str(tmp_path / "one"), workers=1)
    experiments.grid(cfg, one, full=False, log=lambda s: None)
    assert tables.table(exp.out) == tables.table(one.out)


@pytest.mark.parametrize("device, gib, workers, runs, want, graphs", [
    ("cpu", 0, 0, 10, 1, False), ("cuda", 80, 0, 10, 4, False), ("cuda", 141, 0, 10, 4, False),
    ("cuda", 24, 0, 10, 2, False), ("cuda", 8, 0, 10, 1, False), ("cuda", 80, 0, 3, 3, False),
    ("cuda", 80, 6, 10, 6, False), ("cpu", 0, 3, 2, 2, False), ("cuda", 80, 0, 10, 1, True),
    ("cuda", 80, 3, 10, 3, True), ("cpu", 0, 0, 10, 1, True)])
def test_worker_count(monkeypatch, device, gib, workers, runs, want, graphs):
    """--workers=0: 1 on the CPU, and on CUDA with graphs; eager on CUDA one per 12 GiB of the GPU,
    at most 4; never more workers than runs."""
    from types import SimpleNamespace
    monkeypatch.setattr(bert, "pick_device", lambda: torch.device(device))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(total_memory=gib * 2**30))
    assert experiments.worker_count(Experiment(workers=workers, graphs=graphs), runs) == want


def test_reproduce_ablations_run_tables_4_to_6_as_the_paper_did(tmp_path, monkeypatch, capsys):
    """reproduce --ablations, Table 2 at 2 seeds: IOB1 and BIO plain (4 runs); Table 4 at the
    chosen (16, 3e-5), IOB1: with and without warmup as 3- and 4-epoch runs, 4 seeds (16, two of
    them Table 2's IOB1 runs: 14 new); Table 5's task search, lr {2e-5, 3e-5, 5e-5} x delta
    {2.6, 1.6, 1} with unfreeze 3 over 5 epochs, 2 seeds (18); then its LM rows at the search's
    choice (the fake dev F1 follows lr alone: 3e-5, and delta 2.6, the first of the ties), 10 and
    20 masked-LM epochs, 2 seeds (4). 40 runs, all IOB1 but Table 2's BIO; Tables 2, 4 and 5
    printed."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    exp = Experiment(out=str(tmp_path / "runs"), seeds=2, ablations=True, save=False)
    model = bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True)
    experiments.reproduce(FinetuneConfig(model=model, data=TINY), exp, log=lambda s: None)
    assert len(calls) == 40 and sum(c.scheme == "bio" for c in calls) == 2
    table4 = {(c.schedule, c.epochs, c.seed) for c in calls if c.unfreeze == 0}
    assert table4 >= {(s, e, k) for s in ("linear", "constant") for e in (3, 4)
                      for k in range(1, 5)}
    assert all((c.batch_size, c.lr) == (16, 3e-5) for c in calls if c.unfreeze == 0)
    search = [(c.lr, c.delta, c.seed) for c in calls if c.unfreeze and not c.lm_epochs]
    assert sorted(search) == sorted((lr, d, k) for lr in (2e-5, 3e-5, 5e-5)
                                    for d in (2.6, 1.6, 1.0) for k in (1, 2))
    assert all(c.epochs == 5 and c.unfreeze == 3 for c in calls if c.delta != 1.0)
    lm = [(c.lm_epochs, c.lr, c.delta, c.unfreeze, c.epochs, c.seed) for c in calls[-4:]]
    assert lm == [(n, 3e-5, 2.6, 3, 5, k) for n in (10, 20) for k in (1, 2)]
    printed = capsys.readouterr().out
    assert all(t in printed for t in ("Table 2: English", "Table 4:", "Table 5: English"))


def test_reproduce_ablations_wait_for_the_choices_they_start_from(tmp_path, monkeypatch):
    """Two shards: the first finds the plain runs' choice waiting on the second, so it trains no
    ablation run; the second makes the choice, runs its half of Table 4 and the search, and the
    LM rows wait for the first shard's half; a rerun of each finishes the plan (40 runs)."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    exp = Experiment(out=str(tmp_path / "runs"), seeds=2, ablations=True, save=False)
    cfg = FinetuneConfig(model=bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True),
                         data=TINY)
    for shard in ("0/2", "1/2"):
        experiments.reproduce(cfg, replace(exp, shard=shard), log=lambda s: None)
    assert len(calls) == 2 + 2 + 16 and not any(c.lm_epochs for c in calls)
    for shard in ("0/2", "1/2", "0/2"):
        experiments.reproduce(cfg, replace(exp, shard=shard), log=lambda s: None)
    assert len(calls) == 40 == len({records.run_key(c) for c in calls})


def test_reproduce_de_needs_the_licensed_folder(tmp_path):
    with pytest.raises(ValueError, match="deu.train, deu.testa and deu.testb"):
        experiments.reproduce(FinetuneConfig(lang="de"), Experiment(out=str(tmp_path)))


# ---------------------------------------------------------------------------------------------
# The command line.

def parse(argv):
    """The command line's cfg and exp, as main builds them, without running anything."""
    args = vars(experiments.parser().parse_args(argv))
    args.pop("cmd")
    names = {f for f in asdict(FinetuneConfig())}
    return (replace(FinetuneConfig(), **{k: v for k, v in args.items() if k in names}),
            Experiment(**{k: v for k, v in args.items() if k not in names}))


def test_flags_take_both_forms_and_their_types():
    """--lr 5e-5 and --lr=5e-5, --batch-size and --batch_size; bools read true/false/1/0, and a
    bool flag alone reads true."""
    cfg, exp = parse(["train", "--lr", "5e-5", "--batch-size=32", "--epochs", "3", "--scheme=bio",
                      "--save", "FALSE", "--doc_context=1", "--delta", "2", "--seed=-1",
                      "--warmup", "1e-1", "--shard", "1/4", "--workers=3"])
    got = (cfg.lr, cfg.batch_size, cfg.epochs, cfg.scheme, exp.save, cfg.doc_context, cfg.delta,
           cfg.seed, cfg.warmup, exp.shard, exp.workers)
    assert got == (5e-5, 32, 3, "bio", False, True, 2.0, -1, 0.1, "1/4", 3)
    assert [type(x) for x in got] == [float, int, int, str, bool, bool, float, int, float, str, int]
    _, exp = parse(["reproduce", "--lang", "en", "--ablations"])  # a bool alone is true, as
    assert exp.ablations is True  # `make reproduce-en ARGS=--ablations` passes it


@pytest.mark.parametrize("argv, match", [
    (["train", "--batch_size=16.0"], "invalid int value"),
    (["train", "--lr", "fast"], "invalid float"),
    (["train", "--save=yes"], "expected true or false"),
    (["train", "--learning_rate=3e-5"], "unrecognized"),
    (["train", "--clip=-1"], "--clip=-1.0: clip must be > 0"),
    (["train", "--shard=4/4"], "0 <= i < n"),
    (["grid", "--lr=3e-5", "--data", TINY], "the grid searches Table 1"),
    (["train", "--eval_batch_size=-1"], "eval_batch_size must be >= 0"),
    (["train", "--schedule=stlr", "--stlr_ratio=0"], "stlr_ratio must be >= 1"),
    (["grid", "--seed=3", "--data", TINY], "grid runs seeds 1..--seeds (5); drop --seed"),
    (["reproduce", "--seed", "2", "--seeds=3"], "reproduce runs seeds 1..--seeds (3)"),
    (["train", "--seeds=3", "--data", TINY], "--seeds: for grid and reproduce"),
    (["train", "--workers=2", "--shard=1/2"], "--shard, --workers: for grid and reproduce"),
    (["train", "--out="], "--out is empty")])
def test_bad_flags_fail_before_any_work(argv, match, capsys):
    with pytest.raises((SystemExit, ValueError)) as e:
        experiments.main(argv)
    msg = str(e.value) + capsys.readouterr().err
    assert match in msg, msg


def test_a_masked_lm_stage_without_a_head_fails_before_any_work(tmp_path, monkeypatch):
    """--lm_epochs on a checkpoint with no masked-LM head is an error before the first run."""
    headless = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    monkeypatch.setattr(finetune, "train", None)  # training would call it
    with pytest.raises(ValueError, match="has no masked-LM head"):
        experiments.main(["train", "--lm_epochs=1", "--model", headless, "--data", TINY,
                          "--out", str(tmp_path)])
    assert not os.path.exists(tmp_path / "results.jsonl")
    with_head = bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True)
    experiments.check_ready(FinetuneConfig(model=with_head, data=TINY, lm_epochs=1),
                            Experiment(out=str(tmp_path)))


def test_ablations_on_a_model_without_a_head_leave_the_lm_rows_out(tmp_path, monkeypatch):
    """reproduce --ablations on a checkpoint with no masked-LM head says at once that Tables
    5-6's LM rows are left out, and plans and runs the rest (40 - 4 runs)."""
    headless = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    calls, said = [], []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    exp = Experiment(out=str(tmp_path / "runs"), seeds=2, ablations=True, save=False)
    experiments.reproduce(FinetuneConfig(model=headless, data=TINY), exp, log=said.append)
    assert "LM rows are left out" in said[0] and "no masked-LM head" in said[0]
    assert len(calls) == 36 and not any(c.lm_epochs for c in calls)
    assert not any(c.lm_epochs for c in experiments.reproduce_runs(
        FinetuneConfig(model=headless, data=TINY), exp, lm=False))


def test_a_grid_whose_saved_models_would_fill_the_disk_fails_before_any_work(tmp_path,
                                                                             monkeypatch):
    """The models a command will save (a tagger per unrecorded run of its shard, each new
    masked-LM stage), each the checkpoint's size, are weighed against OUT's free space first: the
    120 taggers of a full mBERT grid (85 GB) would otherwise fill a 64 GB disk after 90 runs."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8, mlm=True)
    size = os.path.getsize(os.path.join(folder, "model.safetensors"))
    free = []
    monkeypatch.setattr(experiments.shutil, "disk_usage",
                        lambda p: shutil._ntuple_diskusage(10**12, 10**12 - free[0], free[0]))
    monkeypatch.setattr(finetune, "train", lambda *a, **k: pytest.fail("trained"))
    out = tmp_path / "runs"
    argv = ["grid", "--model", folder, "--data", TINY, "--out", str(out), "--seeds", "1"]
    free.append(12 * size - 1)  # 12 runs: one tagger too many
    with pytest.raises(ValueError, match=re.escape(
            f"{out} has {free[0] / 1e9:.1f} GB free; the 12 runs to go would write 12 models "
            f"of about {size / 1e9:.2f} GB") + r".*12 taggers, 0 masked-LM stages\). Pass "
                                                r"--save false"):
        experiments.main(argv)
    assert not os.path.exists(out / "results.jsonl")
    exp = Experiment(out=str(out), seeds=1)
    runs = experiments.grid_runs(FinetuneConfig(model=folder, data=TINY), exp)
    files = bert.checkpoint_files(folder, ["model.safetensors"])["model.safetensors"]
    experiments.check_space(runs, replace(exp, save=False), files)  # nothing saved: room
    experiments.check_space(runs, replace(exp, shard="0/2"), files)  # 6 runs of this shard
    for cfg in runs[:2]:  # recorded runs save nothing more
        records.append_result(str(out), record(records.run_key(cfg)) | dict(config=asdict(cfg)))
    free[0] = 10 * size
    experiments.check_space(runs, exp, files)
    # 3 and 4 epochs of one (batch, lr, seed) share their masked-LM stage: 4 taggers, 2 stages
    lm = [replace(c, lm_epochs=e) for c in runs[2:4] for e in (10, 20)]
    free[0] = 5 * size
    with pytest.raises(ValueError, match=r"6 models .* 4 taggers, 2 masked-LM stages"):
        experiments.check_space(lm, exp, files)
    stage = out / f"lm-{records.run_key(finetune.lm_config(lm[0]))}"
    stage.mkdir()
    (stage / "model.safetensors").write_bytes(b"")  # a stage written already is not counted
    experiments.check_space(lm, exp, files)


def test_help_lists_every_flag_with_type_default_and_meaning():
    out = subprocess.run([sys.executable, "experiments.py", "train", "-h"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    for f in list(asdict(FinetuneConfig())) + list(asdict(Experiment())):
        assert f"--{f.replace('_', '-')}" in out, f
    assert re.search(r"--lr FLOAT\s+Table 1 grid", out) and "(default: 3e-05)" in out


def test_output_under_a_file_fails_before_training(tmp_path, monkeypatch):
    """--out under a regular file: an error at once, train never called."""
    (tmp_path / "x.txt").write_text("")
    monkeypatch.setattr(finetune, "train", lambda *a, **k: pytest.fail("trained"))
    r = subprocess.run([sys.executable, "experiments.py", "train", "--data", TINY,
                        "--model", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "x.txt" / "sub")],
                       cwd=ROOT, capture_output=True, text=True)
    last = r.stderr.strip().split("\n")[-1]
    assert r.returncode == 1 and last.startswith("error: ") and "Traceback" not in r.stderr
    assert "x.txt" in last and r.stderr.count("error: ") == 1  # one error, said once


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_bad_out_is_named_in_the_flags_words(tmp_path, where):
    """--out that is a file, or a path under one: "--out=PATH: cannot write there (why); pass a
    folder you can write to", not a raw [Errno 17] / [Errno 20] naming an internal .probe
    file."""
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" if where == "a file" else tmp_path / "f" / "sub"
    cfg = FinetuneConfig(data=TINY)
    with pytest.raises(ValueError, match=re.escape(f"--out={out}: cannot write there (")) as e:
        experiments.check_ready(cfg, Experiment(out=str(out)))
    assert ".probe" not in str(e.value) and "pass a folder you can write to" in str(e.value)


def test_a_claim_leaves_no_file_behind(tmp_path, monkeypatch):
    """A run whose training fails right away (its checks inside train) releases its claim and
    leaves no OUT/claims/KEY.lock; a run that records leaves none either. Claims still exclude
    one another while held."""
    def failing(*a, **k):
        raise ValueError("a check inside train failed")
    monkeypatch.setattr(finetune, "train", failing)
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), save=False)
    with pytest.raises(ValueError, match="a check inside train"):
        experiments.run_one(cfg, exp, log=lambda s: None)
    assert os.listdir(tmp_path / "claims") == []
    monkeypatch.setattr(finetune, "train", fake_train([]))
    experiments.run_one(cfg, exp, log=lambda s: None)
    assert os.listdir(tmp_path / "claims") == []
    with records.claim(str(tmp_path), "k") as mine, records.claim(str(tmp_path), "k") as other:
        assert mine and not other
    assert os.listdir(tmp_path / "claims") == []


def test_predict_names_an_odd_output_file_escaped_and_takes_a_batch_size(trained, tmp_path):
    """An output name holding a newline is shown escaped in predict's last line, not split over
    two; --eval-batch-size sets the windows per batch (the tags are the same at 1 and 64)."""
    cfg, exp, rec = trained
    run = os.path.join(exp.out, f"run-{rec['key']}")
    test = corpora.splits(TINY)["test"]
    odd = str(tmp_path / "a\nb.txt")
    with cpu_only():
        report = tagger.predict(run, test, output=odd, batch_size=1)
        again = tagger.predict(run, test, output=str(tmp_path / "c.txt"), batch_size=64)
    assert report.endswith(f"(predictions in {odd!r})\n")
    assert report.split("(predictions")[0] == again.split("(predictions")[0]
    with pytest.raises(ValueError, match="--eval-batch-size=-1: must be >= 0"):
        experiments.main(["predict", run, test, "--eval-batch-size", "-1"])


def hf_tagger_folder(folder, id2label):
    """A small random BertForTokenClassification saved by HF's own code, with en_tiny's vocab."""
    transformers = pytest.importorskip("transformers")
    bert_folder(folder, layers=1, hidden=16)
    n = sum(1 for _ in open(os.path.join(folder, "vocab.txt"), encoding="utf-8"))
    cfg = transformers.BertConfig(vocab_size=n, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  id2label=dict(enumerate(id2label)))
    torch.manual_seed(0)
    transformers.BertForTokenClassification(cfg).save_pretrained(folder)
    return folder


def test_predict_with_a_hub_style_ner_model(tmp_path):
    """predict takes any BERT token classifier with id2label, here saved by HF itself with IOBES
    labels: it tags the CoNLL file, maps S-/E- to B-/I-, and prints conlleval's report in the gold
    file's scheme (IOB1). Entity types with nothing in common with the gold file's are an error."""
    tags = ["O"] + [p + t for t in ("PER", "LOC", "ORG", "MISC") for p in ("B-", "I-", "S-", "E-")]
    folder = hf_tagger_folder(str(tmp_path / "hub"), tags)
    test = corpora.splits(TINY)["test"]
    report = tagger.predict(folder, test, output=str(tmp_path / "p.txt"))
    assert report.startswith("processed ") and "FB1:" in report
    pred = conll.read_conll(str(tmp_path / "p.txt"))
    assert {t[:2] for s in pred for t in s.tags} <= {"O", "B-", "I-"}
    labels = tagger.load_tagger(folder, torch.device("cpu")).labels
    assert labels == [tagger.conll_tag(t) for t in tags]
    other = hf_tagger_folder(str(tmp_path / "onto"), ["O", "B-PERSON", "I-PERSON", "B-GPE"])
    with pytest.raises(ValueError, match="no type in common"):
        tagger.predict(other, test, output=str(tmp_path / "q.txt"))


@pytest.mark.parametrize("label, why", [
    ("B-PER X", "U+0020"), ("B-PER\t", "U+0009"), ("B-PER\xa0", "U+00A0"),
    ("B-PER\n", "U+000A"), ("B-", "no type after its B- prefix")])
def test_a_models_odd_label_name_is_refused_naming_it(tmp_path, label, why):
    """A label is O, or B-/I- (S-/E- mapped) and a printable type with no whitespace, as a CoNLL
    tag is: "B-PER X" wrote 4-column lines and no report, "B-PER\\n" broke a sentence after each
    PER word, "B-PER\\xa0" scored as a type of its own, "B-" became "I-B-"; each is now refused
    with the folder, the id2label key and the label."""
    folder = hf_tagger_folder(str(tmp_path / "hub"), ["O", "B-PER", "I-PER", label])
    with pytest.raises(ValueError, match=re.escape("id2label[\"3\"]") + ".*" + re.escape(why)):
        tagger.predict(folder, corpora.splits(TINY)["test"], output=str(tmp_path / "p.txt"))
    assert not (tmp_path / "p.txt").exists()


# ---------------------------------------------------------------------------------------------
# German without a licence: GermEval 2014 runs and zero-shot rows (Wu & Dredze 2019).

GERMAN = {"conll2003-de": os.path.join(FIXTURES, "deu_tiny"),
          "germeval2014": os.path.join(FIXTURES, "germeval_tiny")}


def report_f1(report):
    """The overall FB1 of a conlleval report (its second line)."""
    return float(re.search(r"FB1:\s+([\d.]+)", report).group(1))


@pytest.fixture(scope="module")
def german_run(tmp_path_factory):
    """A recorded, saved English-data run whose tiny model has learnt the German fixtures' dev and
    test sentences by heart (CoNLL types; 60 epochs, ~3 s), so that its zero-shot F1 is not 0 and
    a scheme or ordering mistake would show."""
    tmp = tmp_path_factory.mktemp("german")
    sents = [s for d in GERMAN.values() for split in ("dev", "test")
             for s in corpora.german_eval_sets(d)[1][split]]
    os.makedirs(tmp / "data")
    for name in ("train.txt", "valid.txt", "test.txt"):
        conll.write_conll(str(tmp / "data" / name), sents, [s.tags for s in sents])
    folder = bert_folder(str(tmp / "bert"), layers=2, hidden=32, data=str(tmp / "data"))
    cfg = FinetuneConfig(model=folder, data=str(tmp / "data"), scheme="bio", lr=3e-3,
                         batch_size=2, epochs=60, warmup=0.0)
    exp = Experiment(out=str(tmp / "runs"))
    return cfg, exp, experiments.run_one(cfg, exp, log=lambda s: None)


@pytest.mark.parametrize("fmt", GERMAN)
def test_zero_shot_scores_a_recorded_run_as_predict_does(german_run, tmp_path, fmt):
    """A run recorded without --zero_shot, asked again with it, is scored from its saved folder:
    dev and test F1 equal the ones `predict` reports on the same German files (GermEval first
    written out with its tags mapped to CoNLL's types); asking a third time adds no record."""
    cfg, exp, rec = german_run
    exp = replace(exp, zero_shot=GERMAN[fmt])
    experiments.run_one(cfg, exp, log=lambda s: None)
    experiments.run_one(cfg, exp, log=lambda s: None)
    zs = [z for z in records.read_results(exp.out, name=records.ZERO_SHOT)
          if z["format"] == fmt]
    assert len(zs) == 1 and zs[0]["run"] == rec["key"] and zs[0]["keep"] is False
    _, sets = corpora.german_eval_sets(GERMAN[fmt])
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    for split in ("dev", "test"):
        gold = str(tmp_path / f"{split}.conll")
        conll.write_conll(gold, sets[split], [s.tags for s in sets[split]])
        report = tagger.predict(run_dir, gold, output=str(tmp_path / f"{split}.pred"))
        if zs[0][split]["gold"]:  # GermEval's dev fixture maps to no span (LOCderiv -> O)
            assert zs[0][split]["f1"] > 0, "the model learnt these sentences: F1 0 is a bug"
        assert round(zs[0][split]["f1"], 2) == report_f1(report), split


def test_zero_shot_of_an_unsaved_run_is_a_warning_not_a_record(trained, tmp_path):
    """A recorded run with no saved model cannot be scored: one warning naming the run, nothing
    written to zero_shot.jsonl."""
    cfg, exp, rec = trained
    out = tmp_path / "runs"
    out.mkdir()
    with open(out / "results.jsonl", "w") as f:
        f.write(json.dumps(rec) + "\n")
    logged = []
    experiments.run_one(cfg, Experiment(out=str(out), zero_shot=GERMAN["conll2003-de"]),
                        log=logged.append)
    assert any("no saved model" in s and rec["key"] in s for s in logged)
    assert records.read_results(str(out), name=records.ZERO_SHOT) == []


def test_zero_shot_needs_english_runs_and_a_german_pair(tmp_path):
    """--zero_shot with --lang de, or a folder with neither German pair, fails before training."""
    with pytest.raises(ValueError, match="--lang en"):
        experiments.check_ready(FinetuneConfig(lang="de", data=GERMAN["conll2003-de"]),
                                Experiment(out=str(tmp_path), zero_shot=GERMAN["conll2003-de"]))
    with pytest.raises(FileNotFoundError, match="deu.testa and deu.testb"):
        experiments.check_ready(FinetuneConfig(data=TINY),
                                Experiment(out=str(tmp_path), zero_shot=TINY))


@pytest.mark.parametrize("level", ["outer", "inner"])
def test_germeval_run_trains_and_scores_its_level(tmp_path, level):
    """--lang germeval trains on NER-de-train.tsv at one level and scores that level: the written
    dev file's gold column is read_germeval's tags of that level, the recorded dev scores are
    conlleval's on its predictions against them, and they count the level's own gold spans (the
    dev fixture: one outer, no inner)."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    data = GERMAN["germeval2014"]
    cfg = FinetuneConfig(model=folder, data=data, lang="germeval", level=level, scheme="bio",
                         lr=1e-3, batch_size=4, epochs=2)
    rec = experiments.run_one(cfg, Experiment(out=str(tmp_path / "runs"), save=False),
                              log=lambda s: None)
    assert rec["config"]["lang"] == "germeval" and rec["config"]["level"] == level
    gold = conll.read_germeval(corpora.splits(data, "germeval")["dev"], level)
    path = os.path.join(tmp_path, "runs", f"run-{rec['key']}", "dev.pred.txt")
    pred = conll.read_conll(path)  # "word gold pred" lines: the last column, pred, as tags
    assert [s.words for s in pred] == [s.words for s in gold]
    cols = [line.split() for line in open(path, encoding="utf-8") if line.strip()]
    assert [c[1] for c in cols if c[0] != conll.DOCSTART] == [t for s in gold for t in s.tags]
    assert rec["dev"] == conlleval.evaluate([s.tags for s in gold], [p.tags for p in pred])
    assert rec["dev"]["gold"] == {"outer": 1, "inner": 0}[level]  # the fixture's dev spans


def test_germeval_reproduce_is_bio_only_and_level_needs_germeval(tmp_path, monkeypatch):
    """reproduce --lang germeval (scheme left at its iob1 default): BIO alone, the files' scheme,
    for Tables 4-6 too: 1 plain run, Table 4's 16 (one of them the plain run), the search's 18 and
    the 4 LM rows = 38 runs, all BIO; --level inner without --lang germeval is an error naming
    the flag."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    model = bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True)
    cfg = FinetuneConfig(lang="germeval", data=GERMAN["germeval2014"], model=model)
    exp = Experiment(out=str(tmp_path / "runs"), seeds=1, save=False, ablations=True)
    experiments.reproduce(cfg, exp, log=lambda s: None)
    assert [c.scheme for c in calls] == ["bio"] * 38
    with pytest.raises(ValueError, match="--level=inner"):
        records.check_config(FinetuneConfig(level="inner"))


@pytest.mark.parametrize("flag, value, match", [
    ("clip", -1.0, "--clip=-1.0: clip must be > 0"), ("max_train_sentences", -70, ">= 0"),
    ("stlr_ratio", 0.0, "stlr_ratio must be >= 1"), ("warmup", 1.0, "warmup must be < 1"),
    ("max_len", 2, "max_len must be >= 3"), ("lr", float("nan"), "--lr=nan"),
    ("lr", float("inf"), "--lr=inf: lr must be a finite number"),
    ("epochs", 0, "--epochs=0: epochs must be >= 1"), ("scheme", "iobes", "expected one of")])
def test_config_ranges_name_the_flag(flag, value, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        records.check_config(FinetuneConfig(**{flag: value}))


def test_config_fields_are_typed_as_the_command_line_types_them():
    """warmup=0 is warmup=0.0 (one run, one key; the range's open end too: warmup=1 is refused as
    1.0 is); an int field takes no float or bool, a bool field no int."""
    a, b = FinetuneConfig(data=TINY, warmup=0, delta=2), FinetuneConfig(data=TINY, warmup=0.0,
                                                                        delta=2.0)
    assert records.run_key(a) == records.run_key(b) and type(a.warmup) is float
    for bad in (dict(warmup=1), dict(max_len=3.5), dict(epochs=True), dict(doc_context=1),
                dict(scheme=1)):
        with pytest.raises(ValueError, match=f"--{next(iter(bad))}="):
            records.check_config(FinetuneConfig(**bad))


def test_run_key_follows_the_data_bytes_not_the_path(tmp_path):
    """The key hashes the split files' bytes: `dir/` and `dir` are one run, a copy elsewhere is the
    same run, an edited file a new one; the model id loses a trailing slash; GermEval's inner
    level is another run than its outer one."""
    copy_dir = tmp_path / "copy"
    shutil.copytree(TINY, copy_dir)
    cfg = FinetuneConfig(data=str(copy_dir))
    key = records.run_key
    assert key(cfg) == key(replace(cfg, data=str(copy_dir) + "/")) == key(replace(cfg, data=TINY))
    assert key(replace(cfg, model="x/")) == key(replace(cfg, model="x"))
    germeval = replace(cfg, lang="germeval", data=GERMAN["germeval2014"])
    assert key(replace(germeval, level="inner")) != key(germeval)
    with open(copy_dir / "test.txt", "a") as f:
        f.write("\nEU NNP B-NP B-ORG\n")
    assert key(cfg) != key(replace(cfg, data=TINY))


def test_read_splits_reads_once_per_process_for_the_same_inputs(tmp_path, monkeypatch):
    """The runs of a grid share one reading of their data: the same files, vocabulary and fields
    read once; another scheme, another vocabulary or an edited file read again."""
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    monkeypatch.setattr(experiments, "_SPLITS", {})  # keyed by bytes: en_tiny may be in it
    reads = []
    real = conll.read_conll
    monkeypatch.setattr(conll, "read_conll", lambda p: reads.append(p) or real(p))
    cfg = FinetuneConfig(model=folder, data=str(data))
    tok = lambda: wordpiece.WordPiece.from_pretrained(folder)  # noqa: E731 (loaded anew each time)
    first = experiments.read_splits(cfg, tok())
    assert len(reads) == 3  # train, dev, test
    again = experiments.read_splits(replace(cfg, seed=7, lr=5e-5, batch_size=32), tok())
    assert again is first and len(reads) == 3
    bio = experiments.read_splits(replace(cfg, scheme="bio"), tok())
    assert len(reads) == 6 and bio[0]["train"].feats is not first[0]["train"].feats
    lower = tok()
    lower.lower = True
    experiments.read_splits(cfg, lower)
    assert len(reads) == 9
    with open(data / "train.txt", "a") as f:
        f.write("\nEU NNP B-NP B-ORG\n")
    edited = experiments.read_splits(cfg, tok())
    assert len(reads) == 12 and len(edited[0]["train"].sents) == len(first[0]["train"].sents) + 1


def test_zero_shot_keep_needs_zero_shot():
    with pytest.raises(ValueError, match="--zero_shot DIR"):
        Experiment(zero_shot_keep=True)


def test_germeval_without_a_folder_downloads_it(monkeypatch):
    """No --data with --lang germeval: the free corpus is downloaded into the cache (GermEval
    2014, CC-BY); CoNLL-2003 German is licensed and says how to get a German row without it."""
    asked = []
    monkeypatch.setattr(corpora, "download", lambda lang, cache: asked.append(lang) or "x")
    assert corpora.data_dir("", "germeval") == "x" and asked == ["germeval"]
    with pytest.raises(ValueError, match="make reproduce-germeval"):
        corpora.data_dir("", "de")


def test_reproduce_with_zero_shot_end_to_end_on_real_weights(minilm_dir, tmp_path):
    """The command line, the packaged MiniLM (real weights), English fixture data, one seed:
    `reproduce --zero_shot DIR --workers 2` trains IOB1 and BIO in two worker processes started
    from the script (as on a GPU by default), scores both on the GermEval fixture, and prints one
    zero-shot row per scheme under the English rows, with the notes."""
    out = str(tmp_path / "runs")
    cmd = [sys.executable, os.path.join(ROOT, "experiments.py"), "reproduce", "--model",
           minilm_dir, "--data", TINY, "--seeds", "1", "--epochs", "1", "--lr", "1e-4",
           "--max_train_sentences", "40", "--out", out, "--save", "false",
           "--zero_shot", GERMAN["germeval2014"], "--workers", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two worker processes share the 2 cores
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.split("\n") if line.startswith("| en→de ")]
    assert "2 runs, 2 worker processes" in done.stdout
    assert sorted(r.split(" | ")[2] for r in rows) == ["BIO", "IOB1"]
    assert all("zero-shot on germeval2014" in r for r in rows)
    assert len(records.read_results(out, name=records.ZERO_SHOT)) == 2


# ---------------------------------------------------------------------------------------------
# Hostile paths and damaged folders: an error naming the file, never a spin or a traceback.

def test_predict_skips_a_dangling_symlink_at_the_default_name(trained, tmp_path, monkeypatch):
    """`ln -s nowhere test.txt.pred.txt`: the default name is taken (by a link to nothing), so the
    next free one is used; the link stays as it was (this used to spin forever, writing temps)."""
    cfg, exp, rec = trained
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "nowhere", tmp_path / "test.txt.pred.txt")
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    report = tagger.predict(run_dir, corpora.splits(TINY)["test"])
    assert "(predictions in test.txt.pred-2.txt)" in report
    assert os.readlink(tmp_path / "test.txt.pred.txt") == str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="exists"):
        tagger.predict(os.path.join(exp.out, f"run-{rec['key']}"), corpora.splits(TINY)["test"],
                       output="test.txt.pred.txt")


def test_predict_text_drops_a_byte_order_mark_at_any_line_start(trained, tmp_path):
    """Two files with byte-order marks joined by cat: the second mark opens a later line, and is no
    more part of its first word than the first one is."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    path = tmp_path / "joined.txt"
    path.write_bytes("\ufeffEU rejects German call\n\ufeffPeter Blackburn\n".encode("utf-8"))
    words = [line.split(" ")[0] for line in tagger.predict(run_dir, str(path), text=True)
             .split("\n") if line]
    assert words == ["EU", "rejects", "German", "call", "Peter", "Blackburn"]


@pytest.mark.parametrize("extra", [1, -1])
def test_a_vocab_that_is_not_the_checkpoints_fails_before_any_work(tmp_path, extra):
    """vocab.txt one line longer than config.json's vocab_size (an IndexError at the first forward
    pass, after the pre-flight checks) or one shorter (accepted, and tagging garbage): both are
    errors naming the two files, from train() and from the command line's checks alike."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    vocab = os.path.join(folder, "vocab.txt")
    lines = open(vocab, encoding="utf-8").read().split("\n")[:-1]
    lines = lines + ["zzzextra"] if extra > 0 else lines[:-1]
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    match = rf"vocab.txt has {len(lines)} pieces but .*config.json says vocab_size"
    with pytest.raises(ValueError, match=match):
        finetune.train(FinetuneConfig(model=folder, data=TINY), fit=None)
    with pytest.raises(ValueError, match=match):
        experiments.main(["train", "--model", folder, "--data", TINY, "--out", str(tmp_path)])


def _damage(folder, edit):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(edit(text))
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda t: t[:len(t) // 2], r"config.json: not valid JSON"),
    (lambda t: json.dumps(json.loads(t) | dict(mbert_ner=[1])), r"mbert_ner must be an object"),
    (lambda t: json.dumps(json.loads(t) | dict(id2label={str(i): i for i in range(9)})),
     r"id2label's values must be tag names"),
    (lambda t: json.dumps(json.loads(t) | dict(mbert_ner=dict(scheme="iobes"))),
     r"mbert_ner.scheme is 'iobes'"),
    (lambda t: json.dumps(json.loads(t) | dict(mbert_ner=dict(max_len=4096))),
     r"mbert_ner.max_len is 4096, but the model has 128 positions .*: set max_len to 128 or "
     r"less there"),
    (lambda t: "[]", r"config.json: expected a JSON object")])
def test_a_damaged_run_folder_is_named_not_a_traceback(trained, tmp_path, edit, match):
    """A run folder whose config.json is cut off, or holds mbert_ner as a list, id2label's values
    as numbers, an unknown scheme, or windows longer than the model's positions (the hint names
    what predict's user can change: predict has no --max_len): an error naming the folder."""
    cfg, exp, rec = trained
    folder = str(tmp_path / "run")
    shutil.copytree(os.path.join(exp.out, f"run-{rec['key']}"), folder)
    _damage(folder, edit)
    with pytest.raises(ValueError, match=match):
        tagger.load_tagger(folder, torch.device("cpu"))


@pytest.mark.parametrize("docstart", [True, False])
def test_what_predict_prints_is_conlleval_on_what_it_writes(trained, tmp_path, docstart):
    """The report predict prints equals conlleval's on the file it writes, byte for byte: no
    -DOCSTART- line the input did not have (each is a token to conlleval.pl), those it had kept,
    and a gold word "-X-" (a sentence break to conlleval.pl) counted the same way in both."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    text = open(corpora.splits(TINY)["test"], encoding="utf-8").read()
    if not docstart:
        text = "\n".join(x for x in text.split("\n") if not x.startswith("-DOCSTART-"))
    text = text.replace("\n\n", "\n-X- -X- O O\n\n", 1)  # a gold word -X- ends a sentence
    src = tmp_path / "in.txt"
    src.write_text(text.lstrip("\n"), encoding="utf-8")
    out = tmp_path / "out.txt"
    printed = tagger.predict(run_dir, str(src), output=str(out))
    written = out.read_text(encoding="utf-8")
    assert ("-DOCSTART-" in written) == docstart
    want = io.BytesIO()
    conlleval.main([], io.BytesIO(out.read_bytes()), want, io.StringIO())
    assert printed == want.getvalue().decode("utf-8") + f"(predictions in {out})\n"
    tokens = sum(1 for x in written.split("\n") if x and not x.startswith("-X- "))
    assert f"processed {tokens} tokens" in printed


def _children(pid):
    """The pids whose parent is pid, from /proc."""
    kids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                if d.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc (Linux)")
def test_sigterm_stops_the_workers_and_a_resume_trains_what_they_had(tmp_path):
    """SIGTERM to `reproduce --workers 2` (a SLURM time limit) while its workers train: the
    workers stop with it (they used to train on), no temporary file is left, and the same
    command at once trains every run and prints the table (it used to skip the runs the orphans
    held and end with "no results.jsonl records")."""
    import signal
    import time
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    out = tmp_path / "out"
    cmd = [sys.executable, "experiments.py", "reproduce", "--model", folder, "--data", TINY,
           "--out", str(out), "--seeds", "2", "--workers", "2", "--save", "false",
           "--max-train-sentences", "64", "--lr", "1e-3"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    while not any(line.startswith("[worker") for line in lines):  # a worker is training
        line = p.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    kids = [k for k in _children(p.pid) if _alive(k)]
    assert len(kids) >= 2, kids  # the two workers (and multiprocessing's tracker)
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + signal.SIGTERM and "stopped" in rest, rest  # 143, as a shell
    assert "Traceback" not in rest, rest
    deadline = time.time() + 30
    while any(map(_alive, kids)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, kids)), "a worker outlived its parent"
    left = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]
    assert left == []
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(records.read_results(str(out))) == 4
    assert "| en |" in again.stdout


def test_a_table_of_runs_still_in_training_says_who_has_them(tmp_path):
    """No record yet but a run claimed by a live process: the table says which run is being
    trained, not that nothing was ever trained; a claim whose process is gone is not counted."""
    out = str(tmp_path)
    with records.claim(out, "dead"):
        pass  # its lock file stays behind, unheld
    with records.claim(out, "a1b2c3") as mine:
        assert mine and records.busy(out) == ["a1b2c3"]
        with pytest.raises(ValueError, match=r"1 runs are being trained by other processes now "
                                             r"\(a1b2c3\)"):
            tables.table(out)
    with pytest.raises(ValueError, match="no results.jsonl records; train or grid"):
        tables.table(out)


def test_a_resume_clears_what_a_killed_try_at_its_run_left(tmp_path):
    """SIGKILL while a tagger was being saved leaves its temporary (0.7 GB for mBERT) in
    run-KEY/; the run's next try, holding the claim, removes it, and a killed append's
    temporary of results.jsonl goes at the next append."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=16, epochs=1,
                         max_train_sentences=16)
    exp = Experiment(out=str(tmp_path / "out"))
    run_dir = tmp_path / "out" / f"run-{records.run_key(cfg)}"
    run_dir.mkdir(parents=True)
    (run_dir / ".model.safetensors.x7f3k2.tmp").write_bytes(b"\0" * 1000)
    (tmp_path / "out" / ".results.jsonl.q1w2e3.tmp").write_text("{")
    experiments.run_one(cfg, exp, log=lambda s: None)
    left = [f for d, _, fs in os.walk(tmp_path / "out") for f in fs if f.endswith(".tmp")]
    assert left == [] and (run_dir / "model.safetensors").is_file()


def test_a_grid_says_where_it_stands(tmp_path, monkeypatch):
    """Each run's lines start "[run i/n]"; after each run, how many are done, how many were
    trained, recorded before or held by another process, and (once one was trained) the time
    left at the pace of the runs trained so far."""
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), seeds=2, save=False)
    runs = experiments.grid_runs(cfg, exp)[:4]
    monkeypatch.setattr(finetune, "train", fake_train([]))
    experiments.run_one(runs[1], exp, log=lambda s: None)  # recorded before
    log = []
    with records.claim(exp.out, records.run_key(runs[3])):  # held by "another process"
        experiments.run_all(runs, exp, log.append)
    assert log[0].startswith("[run 1/4] run ")
    done = [x for x in log if "runs done" in x]
    assert done[0].startswith("1/4 runs done (1 trained, 0 recorded before, 0 with another "
                              "process), ~") and done[0].endswith(" left")
    assert done[-1].startswith("4/4 runs done (2 trained, 1 recorded before, 1 with another "
                               "process), ~0 s left")


def test_demo_offline_scores_no_sentence_it_trained_on(tmp_path, monkeypatch, capsys):
    """`make demo` on a machine with no copy of CoNLL-2003 English and no network: it trains on the
    tests' fixture with the dev and test sentences its train holds too left out (13 of its 60
    test sentences were), says so in a few short lines on stderr, and prints what conlleval.pl
    says of the predictions file (tokens counted as predict counts them)."""
    import urllib.error

    def offline(url, dest):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(corpora, "_fetch", offline)
    monkeypatch.setattr(corpora, "CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(experiments, "minilm_folder",
                        lambda: bert_folder(str(tmp_path / "bert"), layers=1, hidden=16))
    cfg = replace(FinetuneConfig(), **(experiments.DEMO | dict(epochs=1)))
    exp = Experiment(out=str(tmp_path / "out"), save=False)
    experiments.demo(cfg, exp)
    out, err = capsys.readouterr()
    folder = os.path.join(exp.out, "en_tiny-held-out")
    train = {tuple(s.words) for s in conll.read_conll(os.path.join(folder, "train.txt"))}
    test = conll.read_conll(os.path.join(folder, "test.txt"))
    full = conll.read_conll(corpora.splits(TINY)["test"])
    assert not any(tuple(s.words) in train for s in test) and len(test) < len(full)
    assert f"scored on the {len(test)} of its test sentences that are not among them" in err
    assert all(len(line) <= 80 for line in err.splitlines()) and len(err.splitlines()) == 4
    (rec,) = records.read_results(exp.out)
    pred = os.path.join(exp.out, f"run-{rec['key']}", "test.pred.txt")
    assert out.split(" sentences:\n", 1)[1] == tagger.report_of(pred)


@pytest.mark.parametrize("what", ["table", "predict"])
def test_a_reader_that_goes_away_gets_no_error(trained, what):
    """`experiments.py table | head -1` and `predict --text | head -1`: the reader closes the pipe
    before the output is written; the command stops quietly (it printed "error: [Errno 32] Broken
    pipe")."""
    cfg, exp, rec = trained
    if what == "table":
        cmd = ["table", "--out", exp.out]
    else:
        cmd = ["predict", os.path.join(exp.out, f"run-{rec['key']}"), "-", "--text"]
    p = subprocess.Popen([sys.executable, "experiments.py", *cmd], cwd=ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    p.stdout.close()  # the reader is gone before a byte is written
    _, err = p.communicate(b"EU rejects German call\n" * 2000)
    assert err == b"" and p.returncode == 141, err.decode()


# ---------------------------------------------------------------------------------------------
# Killed outright (SIGKILL) at the moment a temporary exists, then resumed: nothing left behind.

KILLER = """
import os, signal, sys
sys.path[:0] = [{root!r}, {tests!r}]
import atomic, bert, experiments, tagger
from experiments import Experiment
from finetune import FinetuneConfig
def die(*a, **k):  # the writer's own temporary is there, as safetensors' would be: killed now
    signal.pthread_sigmask(signal.SIG_BLOCK, [])
    os.kill(os.getpid(), signal.SIGKILL)
{setup}
"""


def killed(tmp_path, setup):
    """Run `setup` (Python, after KILLER's imports) in a child that SIGKILLs itself in `die`."""
    code = KILLER.format(root=ROOT, tests=os.path.join(ROOT, "tests"), setup=setup)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert p.returncode == -signal.SIGKILL, p.stderr


def temps(folder):
    return [os.path.join(d, n) for d, ds, fs in os.walk(folder) for n in ds + fs
            if n.endswith(".tmp") or n.startswith(".tmp")]


@pytest.mark.parametrize("stage", ["tagger", "masked-LM stage"])
def test_a_kill_while_saving_a_model_leaves_nothing_after_the_resume(tmp_path, stage):
    """SIGKILL while the tagger (or the masked-LM stage) is written, with the writer's own
    temporary file made beside its target as safetensors makes one (`.tmpXXXXXX`, the size of the
    model): the temporaries are there after the kill; the resumed run trains, records, and
    leaves none."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, mlm=True)
    cfg = FinetuneConfig(model=folder, data=TINY, lr=1e-3, batch_size=16, epochs=1,
                         max_train_sentences=16, lm_epochs=int(stage != "tagger"))
    out = str(tmp_path / "out")
    setup = f"""
cfg = FinetuneConfig(model={folder!r}, data={TINY!r}, lr=1e-3, batch_size=16, epochs=1,
                     max_train_sentences=16, lm_epochs={cfg.lm_epochs})
import safetensors.torch
def save_file(tensors, filename, metadata=None):
    open(os.path.join(os.path.dirname(filename), ".tmpAb3xYz"), "wb").write(b"\\0" * 1000)
    die()
safetensors.torch.save_file = save_file
experiments.run_one(cfg, Experiment(out={out!r}), log=lambda s: None)
"""
    killed(tmp_path, setup)
    assert temps(out), "the kill left the temporaries a resume must clear"
    with cpu_only():
        rec = experiments.run_one(cfg, Experiment(out=out), log=lambda s: None)
    assert temps(out) == [] and rec["key"] == records.run_key(cfg)
    assert os.path.isfile(os.path.join(out, f"run-{rec['key']}", "model.safetensors"))


def test_a_kill_while_predict_writes_leaves_nothing_after_the_next_predict(trained, tmp_path):
    """SIGKILL while predict writes its output (the temporary written, not yet linked into
    place): the next predict into the same folder clears it and writes its file."""
    cfg, exp, rec = trained
    run = os.path.join(exp.out, f"run-{rec['key']}")
    work = tmp_path / "work"
    work.mkdir()
    text = work / "in.txt"
    text.write_text("EU rejects German call .\n")
    setup = f"""
os.chdir({str(work)!r})
os.link = die
tagger.predict({run!r}, {str(text)!r}, text=True, output="out.txt")
"""
    killed(tmp_path, setup)
    assert temps(work)
    with cpu_only():
        tagger.predict(run, str(text), text=True, output=str(work / "out.txt"))
    assert temps(work) == [] and sorted(os.listdir(work)) == ["in.txt", "out.txt"]


def test_three_spellings_of_one_model_folder_pool_into_one_row_from_anywhere(tmp_path,
                                                                             monkeypatch):
    """Seeds 1-3 trained as `tiny`, `./tiny/` and the folder's absolute path from the folder that
    holds it: one model, so one row of 3 seeds in the table, read from that folder or any other
    (the record keeps the model's identity as the run's key named it where it trained)."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    work = tmp_path / "work"
    bert_folder(str(work / "tiny"), layers=1, hidden=8)
    out = str(tmp_path / "out")
    monkeypatch.chdir(work)
    for seed, model in ((1, "tiny"), (2, "./tiny/"), (3, str(work / "tiny"))):
        experiments.run_one(FinetuneConfig(model=model, data=TINY, seed=seed),
                            Experiment(out=out, save=False), log=lambda s: None)
    for where in (work, tmp_path):
        monkeypatch.chdir(where)
        rows = tables.table(out).split("\n\n")[0].split("\n")[2:]
        assert len(rows) == 1 and rows[0].split(" | ")[1] == "tiny"
        assert rows[0].split(" | ")[7] == "3"


def test_a_byte_order_mark_before_the_first_record_hides_nothing(tmp_path, monkeypatch):
    """An editor saved results.jsonl with a byte-order mark: its first record is still read, so
    its run is not trained again and its key is not written twice."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), save=False)
    experiments.run_one(cfg, exp, log=lambda s: None)
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    experiments.run_one(cfg, exp, log=lambda s: None)
    assert len(calls) == 1 and len(path.read_text(encoding="utf-8-sig").splitlines()) == 1


def test_a_zero_shot_record_missing_a_field_is_named_not_a_traceback(tmp_path):
    """zero_shot.jsonl: a record without `keep` is named (file:line, which field) and left out;
    the table of the rest prints."""
    add = dict(key="z", run="r", data="d", format="conll2003-de", dev={"f1": 1.0},
               test={"f1": 2.0})
    (tmp_path / records.ZERO_SHOT).write_text(json.dumps(add) + "\n")
    warnings = []
    assert records.read_results(str(tmp_path), warnings.append, records.ZERO_SHOT) == []
    assert warnings == [f"warning: {tmp_path}/{records.ZERO_SHOT}:1: not a result record (keep "
                        f"is None, expected bool); skipped (left in the file)"]


def test_a_results_lock_that_is_a_link_fails_before_training(tmp_path, monkeypatch):
    """OUT/results.jsonl.lock planted as a symlink: refused by the checks before any work (it
    used to be found only when the trained run was recorded, and the run was lost)."""
    monkeypatch.setattr(finetune, "train", None)  # training would call it
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path / "elsewhere", out / "results.jsonl.lock")
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    with pytest.raises(OSError, match="results.jsonl.lock: cannot open as a lock file"):
        experiments.main(["train", "--model", folder, "--data", TINY, "--out", str(out)])
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_command_exits_as_a_shell_says_it_was_stopped(tmp_path, sig):
    """Ctrl-C (SIGINT) during train exits with 130 and SIGTERM with 143 (128 + the signal), after
    the cleanup and a line that says what stays, so a shell or SLURM tells a stopped job from a
    failed one (both used to exit 1)."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    cmd = [sys.executable, "experiments.py", "train", "--model", folder, "--data", TINY,
           "--out", str(tmp_path / "out"), "--epochs", "200", "--save", "false"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while "epoch 1" not in (line := p.stdout.readline()):  # training has started
        assert line
    p.send_signal(sig)
    rest = p.communicate(timeout=60)[0]
    assert p.returncode == 128 + sig, rest
    assert "stopped: what is recorded stays; the same command resumes the rest" in rest
    assert "Traceback" not in rest


def test_predict_takes_a_sentence_on_the_command_line(trained, tmp_path, monkeypatch, capsys):
    """`predict RUN "EU rejects German call ." --text`, as users type it (HF's pipeline, spaCy,
    flair take a sentence): the argument is no file, holds a space, so it is the text; its tags
    are those the same line in a file gets. One word that is no file is an error saying how to
    tag a one-word sentence."""
    cfg, exp, rec = trained
    run_dir = os.path.join(exp.out, f"run-{rec['key']}")
    monkeypatch.chdir(tmp_path)
    sentence = "EU rejects German call ."
    (tmp_path / "in.txt").write_text(sentence + "\n")
    with cpu_only():
        experiments.main(["predict", run_dir, sentence, "--text"])
        typed = capsys.readouterr().out
        assert typed == tagger.predict(run_dir, "in.txt", text=True)
    assert [line.split()[0] for line in typed.split("\n") if line] == sentence.split()
    with pytest.raises(FileNotFoundError, match="Paris: no such file .*echo Paris"):
        tagger.predict(run_dir, "Paris", text=True)


def test_a_tagger_that_finds_no_room_is_said_and_the_run_is_not_recorded(tmp_path):
    """A file-size limit (ulimit -f) smaller than the tagger: train ends with one line naming
    model.safetensors, why (File too large) and what to do, no traceback; no temporary is left
    and no record written, so the same command trains the run again when there is room."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=64)
    out = tmp_path / "out"
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (60000, "
            "60000)); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, "experiments.py", "train", "--model", folder,
                        "--data", TINY, "--out", str(out), "--epochs", "1",
                        "--max-train-sentences", "16"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "model.safetensors could not be written" in r.stderr and "File too large" in r.stderr
    assert "the run is not recorded" in r.stderr and "--save false" in r.stderr
    assert not (out / "results.jsonl").exists() and temps(str(out)) == []


NODE = """
import contextlib, sys
sys.path[:0] = [{root!r}, {tests!r}]
import atomic, records
atomic.locked = lambda path: contextlib.nullcontext()  # a lock that holds on no other "node"
for i in range(40):
    key = f"shared{{i}}" if i % 2 else f"{name}{{i}}"
    records.append_result({out!r}, dict(key=key, config={config!r}, dev=dict(f1=1.0),
                                        test=dict(f1=2.0), by={name!r}))
"""


def test_two_nodes_whose_locks_do_not_see_each_other_lose_and_double_nothing(tmp_path):
    """Two processes append 40 records each to one OUT at once, as shards on two nodes of a
    shared file system where flock holds per node: their locks are made to exclude nothing. 20
    keys are each process's own, 20 both record: the table's input holds 60 records, one per key
    (the record files decide who recorded a shared key first), though results.jsonl, rewritten by
    both without a lock that holds, may have lost lines."""
    config = asdict(FinetuneConfig(data=TINY))
    procs = [subprocess.Popen([sys.executable, "-c", NODE.format(
        root=ROOT, tests=os.path.join(ROOT, "tests"), out=str(tmp_path), config=config,
        name=name)]) for name in ("a", "b")]
    assert [p.wait() for p in procs] == [0, 0]
    recs = records.read_results(str(tmp_path))
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)) == 60
    assert sorted(os.listdir(tmp_path / "records")) == sorted(f"{k}.json" for k in keys)
    assert {r["by"] for r in recs if r["key"].startswith("shared")} <= {"a", "b"}


def test_reproduce_ablations_end_to_end_on_a_slice(tmp_path, capsys):
    """`reproduce --ablations` through the command line with a small random BERT that has a
    masked-LM head, on 16 training sentences at lr 1e-3: Table 2's 2 plain runs, Table 4's 16
    (one of them Table 2's IOB1 run), the task search's 24 (eta_0 in Table 1's three rates and
    the chosen 1e-3, x 3 deltas x 2 seeds), then the LM rows' 4, their 4 masked-LM stages (10 and
    20 epochs, seeds 1 and 2) trained and kept in OUT/lm-KEY: 45 runs, each recorded once, and the
    printed tables: Table 2, Table 4, and Table 5 with its four rows filled."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, mlm=True)
    out = tmp_path / "out"
    with cpu_only():
        experiments.main(["reproduce", "--model", folder, "--data", TINY, "--out", str(out),
                          "--seeds", "1", "--ablations", "--save", "false", "--lr", "1e-3",
                          "--max-train-sentences", "16", "--batch-size", "8",
                          "--cleanconll", "off"])
    text = capsys.readouterr().out
    recs = records.read_results(str(out))
    assert len(recs) == 2 + 15 + 24 + 4 and len(os.listdir(out / "records")) == len(recs)
    stages = {f"lm-{records.run_key(finetune.lm_config(FinetuneConfig(**r['config'])))}"
              for r in recs if r["config"]["lm_epochs"]}
    assert len(stages) == 4 and all((out / k / "model.safetensors").is_file() for k in stages)
    assert "Table 2: English" in text and "Table 4:" in text and "Table 5: English" in text
    table5 = [r for r in text.split("Table 5: English")[1].split("\n\n")[1].split("\n")[2:] if r]
    assert len(table5) == 4 and all(" | – | – | – |" not in row for row in table5), table5


def test_a_record_from_before_a_field_was_added_keeps_its_key_and_row(tmp_path, monkeypatch):
    """A run recorded before FinetuneConfig had clip_each: its record has no such field. It reads
    as clip_each False, the table shows it as plain BERT (not "clip_each=None"), and the same
    run today has the same key, so a resume does not train it again; clip_each true is another
    run."""
    cfg = FinetuneConfig(data=TINY)
    old = {k: v for k, v in asdict(cfg).items() if k != "clip_each"}
    key = records.run_key(cfg)
    assert key == records.digest({**old, "data": corpora.data_fingerprint(TINY, "en"),
                                  "model": cfg.model})  # the key as the code before computed it
    records.append_result(str(tmp_path), dict(key=key, config=old, dev=dict(f1=90.0),
                                              test=dict(f1=91.0)))
    (rec,) = records.read_results(str(tmp_path))
    assert rec["config"]["clip_each"] is False
    assert tables.table(str(tmp_path)).split("\n")[2].split(" | ")[6] == "BERT"
    monkeypatch.setattr(finetune, "train", None)  # a resume would call it
    assert experiments.run_one(cfg, Experiment(out=str(tmp_path)), log=lambda s: None) == rec
    assert records.run_key(replace(cfg, clip_each=True)) != key
