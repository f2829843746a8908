"""experiments.py in this process: run folders (OUT/run-KEY/result.json, written last), the Table 1
grid and its choice, shards as fixed slices, the plans of Tables 2-6, the command line's flags,
predict, zero-shot, GermEval, CleanCoNLL and the demo, on the CPU with a random BERT
(tests/conftest.py) or a stand-in for finetune.train. tests/test_runs.py starts the command as a
process: kills, signals, two shards at once, pipes.

References: the hand-worked grid and table numbers below; transformers for the HF layout of
saved runs (tests/test_bert.py holds the logits check)."""
import io
import json
import os
import re
import shutil
from dataclasses import asdict, replace

import pytest
import torch

import atomic
import bert
import conll
import conlleval
import corpora
import experiments
import finetune
import paper
import rescore
import tables
import tagger
import wordpiece
from conftest import FIXTURES, TINY, bert_folder, cpu_only
from experiments import Experiment
from finetune import FinetuneConfig


@pytest.fixture(scope="module", autouse=True)
def one_thread_on_the_cpu():
    """Tiny models: one thread is faster than two on a shared 2-core machine. And the CPU even
    where there is a GPU: several tests compare two runs (or a run and a later `predict`) tag for
    tag, which holds bit for bit on the CPU only. The GPU's training path is tested in
    test_finetune.py."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with cpu_only():
        yield
    torch.set_num_threads(n)


def quiet(s):
    pass


def run_dir(exp, rec):
    return os.path.join(exp.out, f"run-{rec['key']}")


RECORD_KEYS = {"key", "config", "dev", "test", "dev_f1_per_epoch", "train_time_s", "time_s",
               "updates", "tokens_per_s", "device", "graphs", "data_id", "model_id"}


# ---------------------------------------------------------------------------------------------
# A run is a folder: OUT/run-KEY/, done when its result.json (written last) parses.

def test_run_one_writes_the_run_folder_with_its_result_last(trained):
    """The returned record is OUT/run-KEY/result.json, the one record of OUT, with the design's
    keys (no CleanCoNLL on en_tiny: its words are not CoNLL-2003's); the folder holds both
    prediction files, whose conlleval F1 is the recorded one, and the saved tagger."""
    cfg, exp, rec = trained
    assert json.loads(json.dumps(rec)) in tables.results(exp.out)
    assert set(rec) == RECORD_KEYS and rec["key"] == experiments.run_key(cfg)
    assert tables.read_result(run_dir(exp, rec)) == json.loads(json.dumps(rec))
    for split in ("dev", "test"):
        pred = conll.read_conll(os.path.join(run_dir(exp, rec), f"{split}.pred.txt"))
        gold = conll.read_conll(corpora.splits(TINY)[split])
        f1 = conlleval.evaluate([s.tags for s in gold], [s.tags for s in pred])["f1"]
        assert f1 == rec[split]["f1"], split
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(run_dir(exp, rec), name)), name


def test_same_seed_same_result(trained, tmp_path):
    """On the CPU a run is repeatable: the same config elsewhere gives the same scores."""
    cfg, exp, rec = trained
    again = experiments.run_one(cfg, replace(exp, out=str(tmp_path), save=False), quiet)
    for k in ("dev", "test", "dev_f1_per_epoch"):
        assert again[k] == rec[k], k


def test_run_one_skips_a_done_run_and_trains_another_seed(trained, monkeypatch):
    """A run whose result.json parses returns its record without training; another seed trains
    and adds one run folder."""
    cfg, exp, rec = trained
    n = len(tables.results(exp.out))
    with monkeypatch.context() as mp:
        mp.setattr(finetune, "train", lambda *a, **k: pytest.fail("trained a done run"))
        log = []
        assert experiments.run_one(cfg, exp, log=log.append) == json.loads(json.dumps(rec))
    assert log == [f"run {rec['key']} (bio, lr 0.001, batch 8, epochs 3, seed 1): done before, "
                   f"skipped"]
    new = experiments.run_one(replace(cfg, seed=2), replace(exp, save=False), quiet)
    keys = {r["key"] for r in tables.results(exp.out)}
    assert len(keys) == n + 1 and new["key"] in keys and new["key"] != rec["key"]


def fake_train(calls, fail_at=0, dev_of=None):
    """A train() that scores a config at once. dev F1 = 80 + {2e-5: 0, 3e-5: 2, 5e-5: 1}[lr] +
    (epochs == 4) - 0.5 (batch == 32) + 0.1 seed, test F1 = dev - 1; the setting (32, 5e-5, 3)
    instead gets +15 on seed 1 and -15 on seed 2: the best single run (95.6) but mean dev 80.65.
    Best mean dev (2 seeds): batch 16, lr 3e-5, 4 epochs, 83.15. dev_of(cfg) replaces the rule."""
    def train(cfg, encoder=None, fit=None, eval_batch_size=0, log=print):
        calls.append(cfg)
        if len(calls) == fail_at:
            raise KeyboardInterrupt("killed")
        if dev_of:
            dev = dev_of(cfg)
        else:
            dev = 80 + {2e-5: 0, 3e-5: 2, 5e-5: 1}.get(cfg.lr, 0) + (cfg.epochs == 4)
            dev += 0.1 * cfg.seed - 0.5 * (cfg.batch_size == 32)
            if (cfg.batch_size, cfg.lr, cfg.epochs) == (32, 5e-5, 3):
                dev += 15 if cfg.seed == 1 else -15
        stats = dict(updates=1, tokens=1, train_s=1.0, time_s=1.0)
        return finetune.Trained(None, None, [], dict(f1=dev), dict(f1=dev - 1), [dev], {}, stats)
    return train


def test_a_run_folder_without_a_result_is_removed_and_trained_again(tmp_path, monkeypatch):
    """A try that did not finish (killed while it saved the tagger: a model file, a temporary,
    no result.json) leaves run-KEY/ without a result: the next try removes the folder, trains,
    and leaves only what a whole run writes."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), save=False)
    folder = tmp_path / f"run-{experiments.run_key(cfg)}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / ".result.json.x7f3k2a9.tmp").write_text("{")
    rec = experiments.run_one(cfg, exp, quiet)
    assert len(calls) == 1 and os.listdir(folder) == ["result.json"]
    assert tables.read_result(str(folder)) == rec


def test_a_failed_run_leaves_no_folder(tmp_path, monkeypatch):
    """A run whose training fails (a check inside train) writes no run folder, so nothing reads
    as done; the same run then trains and is done."""
    def failing(*a, **k):
        raise ValueError("a check inside train failed")
    monkeypatch.setattr(finetune, "train", failing)
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), save=False)
    with pytest.raises(ValueError, match="a check inside train"):
        experiments.run_one(cfg, exp, quiet)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(finetune, "train", fake_train([]))
    experiments.run_one(cfg, exp, quiet)
    assert os.listdir(tmp_path) == [f"run-{experiments.run_key(cfg)}"]


def test_a_result_that_does_not_parse_is_named_and_counts_as_none(tmp_path, capsys):
    """tables.read_result: none for a folder without result.json (silently), none with a warning
    naming the file for one cut short or not UTF-8; results() leaves such runs out."""
    whole, cut, bad = (tmp_path / f"run-{k}" for k in ("a", "b", "c"))
    for folder in (whole, cut, bad):
        folder.mkdir()
    text = json.dumps(dict(key="a", config={}, dev={"f1": 1.0}))
    (whole / "result.json").write_text(text)
    (cut / "result.json").write_text(text[:len(text) // 2])
    (bad / "result.json").write_bytes(b'{"key": "\xff"}')
    assert tables.read_result(str(tmp_path / "none")) is None
    assert capsys.readouterr().err == ""
    assert [r["key"] for r in tables.results(str(tmp_path))] == ["a"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("not a whole record" in x for x in err)
    assert err[0].startswith(f"warning: {cut / 'result.json'}: not a whole record (")
    assert err[1].startswith(f"warning: {bad / 'result.json'}: not a whole record (")


# ---------------------------------------------------------------------------------------------
# predict: a saved run, or any BERT NER model.

def test_predict_conll_file_round_trip(trained, tmp_path, monkeypatch):
    """predict() on the saved run and the test file writes what run_one wrote, and reports the
    recorded test F1; a second call never overwrites: it picks test.txt.pred-2.txt."""
    cfg, exp, rec = trained
    test = corpora.splits(TINY)["test"]
    out = str(tmp_path / "test.pred.txt")
    report = tagger.predict(run_dir(exp, rec), test, output=out)
    with open(out, "rb") as f, open(os.path.join(run_dir(exp, rec), "test.pred.txt"), "rb") as g:
        assert f.read() == g.read()
    assert f"FB1: {rec['test']['f1']:6.2f}" in report
    with pytest.raises(ValueError, match="exists"):
        tagger.predict(run_dir(exp, rec), test, output=out)
    monkeypatch.chdir(tmp_path)
    first = tagger.predict(run_dir(exp, rec), test)
    second = tagger.predict(run_dir(exp, rec), test)
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
    rec = experiments.run_one(cfg, Experiment(out=str(tmp_path / "runs")), log=quiet)
    assert rec["device"] == "cuda"
    folder = tmp_path / "runs" / f"run-{rec['key']}"
    tagger.predict(str(folder), str(data / "test.txt"), output=str(tmp_path / "again"))
    assert (tmp_path / "again").read_bytes() == (folder / "test.pred.txt").read_bytes()


def test_predict_keeps_the_models_scheme_for_unlabelled_input(trained, tmp_path):
    """A words-only file and an all-O file carry no scheme of their own: predictions come in the
    model's (BIO here), and the words-only output is "word TAG" lines. A labelled IOB1 file gets
    IOB1 predictions, as conlleval needs."""
    cfg, exp, rec = trained
    gold = conll.read_conll(corpora.splits(TINY)["test"])
    words = tmp_path / "words.txt"
    words.write_text("".join("".join(w + "\n" for w in s.words) + "\n" for s in gold))
    allo = tmp_path / "allo.txt"
    allo.write_text("".join("".join(f"{w} O\n" for w in s.words) + "\n" for s in gold))
    tagger.predict(run_dir(exp, rec), str(words), output=str(tmp_path / "w.out"))
    tagger.predict(run_dir(exp, rec), str(allo), output=str(tmp_path / "o.out"))
    lines = (tmp_path / "w.out").read_text().split("\n")
    assert all(len(x.split(" ")) == 2 for x in lines if x)
    tags_w = [x.split(" ")[1] for x in lines if x]
    tags_o = [x.split(" ")[2] for x in (tmp_path / "o.out").read_text().split("\n") if x
              and not x.startswith("-DOCSTART-")]
    assert tags_w == tags_o and conll.detect_scheme([tags_w]) == "bio"
    iob1 = conll.read_conll(os.path.join(run_dir(exp, rec), "test.pred.txt"))
    assert conll.detect_scheme(s.tags for s in iob1) == "iob1"


def test_predict_text(trained, tmp_path):
    """Text mode: one sentence a line, split at spaces and punctuation ("17,000." -> 17 , 000 .),
    "word TAG" lines in the training scheme (BIO), a blank line after each input line, so a blank
    input line gives an empty block and output lines up with input. Test sentences typed as text
    get the tags the CoNLL mode gave them. An empty file gives empty output; a latin-1 file is
    read as latin-1 (detected as CoNLL files are), one mixing UTF-8 and a stray byte is an error
    naming the file and line, and UTF-16 without --encoding says to pass it."""
    cfg, exp, rec = trained
    folder = run_dir(exp, rec)
    gold = conll.read_conll(corpora.splits(TINY)["test"])
    pred = conll.read_conll(os.path.join(folder, "test.pred.txt"))
    plain = [k for k, s in enumerate(gold)
             if all(wordpiece.split_punct(w) == [w] for w in s.words)][:3]
    path = tmp_path / "in.txt"
    lines = [" ".join(gold[k].words) for k in plain] + ["", "Arafat paid 17,000."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tagger.predict(folder, str(path), text=True)
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
    assert tagger.predict(folder, str(tmp_path / "empty.txt"), text=True) == ""
    (tmp_path / "latin.txt").write_bytes(b"Angela\nM\xfcller sagt\n")  # detected, as CoNLL is
    out = tagger.predict(folder, str(tmp_path / "latin.txt"), text=True)
    assert [x.split(" ")[0] for x in out.split("\n") if x] == ["Angela", "Müller", "sagt"]
    (tmp_path / "mixed.txt").write_bytes("Köln\nM\xfcller sagt\n".encode("latin-1")
                                         .replace(b"K\xf6ln", "Köln".encode()))
    with pytest.raises(ValueError, match=r"mixed.txt:2: byte 0xfc is not valid UTF-8"):
        tagger.predict(folder, str(tmp_path / "mixed.txt"), text=True)
    (tmp_path / "utf16.txt").write_bytes("EU rejects\n".encode("utf-16"))
    with pytest.raises(ValueError, match="UTF-16 text .*--encoding utf-16"):
        tagger.predict(folder, str(tmp_path / "utf16.txt"), text=True)


def test_predict_text_to_an_output_file_and_its_input_checks(trained, tmp_path):
    """--text --output writes the lines it would print; a BOM is not part of the first word; an
    unknown --encoding, and a word too long for the model's windows, are errors naming what to
    fix."""
    cfg, exp, rec = trained
    folder = run_dir(exp, rec)
    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffArafat met Peter Blackburn .\n".encode())
    printed = tagger.predict(folder, str(path), text=True)
    assert printed.split(" ")[0] == "Arafat"
    said = tagger.predict(folder, str(path), text=True, output=str(tmp_path / "o.txt"))
    assert said == f"(predictions in {tmp_path / 'o.txt'})\n"
    assert (tmp_path / "o.txt").read_text() == printed
    with pytest.raises(ValueError, match="unknown encoding 'foo'"):
        tagger.predict(folder, str(path), text=True, encoding="foo")
    path.write_text("Arafat\n" + "-" * 200 + "\n")  # CoNLL, words only: "-" x 200 is one word
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: word '---")):
        tagger.predict(folder, str(path))


def test_saved_run_is_an_hf_token_classifier(trained):
    """transformers loads the run folder as it is and gives our logits (fp32, eval)."""
    transformers = pytest.importorskip("transformers")
    cfg, exp, rec = trained
    hf = transformers.AutoModelForTokenClassification.from_pretrained(run_dir(exp, rec)).eval()
    t = tagger.load_tagger(run_dir(exp, rec), torch.device("cpu"))
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


def test_predict_names_an_odd_output_file_escaped_and_takes_a_batch_size(trained, tmp_path,
                                                                         capsys):
    """An output name holding a newline is shown escaped in predict's last line, not split over
    two; --eval-batch-size sets the windows per batch (the tags are the same at 1 and 64), and a
    negative one is argparse's error (exit 2)."""
    cfg, exp, rec = trained
    test = corpora.splits(TINY)["test"]
    odd = str(tmp_path / "a\nb.txt")
    report = tagger.predict(run_dir(exp, rec), test, output=odd, batch_size=1)
    again = tagger.predict(run_dir(exp, rec), test, output=str(tmp_path / "c.txt"), batch_size=64)
    assert report.endswith(f"(predictions in {odd!r})\n")
    assert report.split("(predictions")[0] == again.split("(predictions")[0]
    with pytest.raises(SystemExit) as e:
        experiments.main(["predict", run_dir(exp, rec), test, "--eval-batch-size", "-1"])
    assert e.value.code == 2 and "-1: must be >= 0" in capsys.readouterr().err


def test_predict_takes_a_sentence_on_the_command_line(trained, tmp_path, monkeypatch, capsys):
    """`predict RUN "EU rejects German call ." --text`, as users type it (HF's pipeline, spaCy,
    flair take a sentence): the argument is no file, so it is the text; its tags are those the
    same line in a file gets. Without --text, a missing "file" with a space in its name asks
    whether it is a sentence; an empty sentence is an error."""
    cfg, exp, rec = trained
    monkeypatch.chdir(tmp_path)
    sentence = "EU rejects German call ."
    (tmp_path / "in.txt").write_text(sentence + "\n")
    experiments.main(["predict", run_dir(exp, rec), sentence, "--text"])
    typed = capsys.readouterr().out
    assert typed == tagger.predict(run_dir(exp, rec), "in.txt", text=True)
    assert [line.split()[0] for line in typed.split("\n") if line] == sentence.split()
    with pytest.raises(ValueError, match="no such file; a sentence\\? add --text"):
        tagger.predict(run_dir(exp, rec), sentence)
    with pytest.raises(ValueError, match="the sentence to tag is empty"):
        tagger.predict(run_dir(exp, rec), " ", text=True)


def test_predict_skips_a_dangling_symlink_at_the_default_name(trained, tmp_path, monkeypatch):
    """`ln -s nowhere test.txt.pred.txt`: the default name is taken (by a link to nothing), so the
    next free one is used; the link stays as it was; --output naming it is refused."""
    cfg, exp, rec = trained
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "nowhere", tmp_path / "test.txt.pred.txt")
    report = tagger.predict(run_dir(exp, rec), corpora.splits(TINY)["test"])
    assert "(predictions in test.txt.pred-2.txt)" in report
    assert os.readlink(tmp_path / "test.txt.pred.txt") == str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="exists"):
        tagger.predict(run_dir(exp, rec), corpora.splits(TINY)["test"],
                       output="test.txt.pred.txt")


@pytest.mark.parametrize("docstart", [True, False])
def test_what_predict_prints_is_conlleval_on_what_it_writes(trained, tmp_path, docstart):
    """The report predict prints equals conlleval's on the file it writes, byte for byte: no
    -DOCSTART- line the input did not have (each is a token to conlleval.pl), those it had kept,
    and a gold word "-X-" (a sentence break to conlleval.pl) counted the same way in both."""
    cfg, exp, rec = trained
    text = open(corpora.splits(TINY)["test"], encoding="utf-8").read()
    if not docstart:
        text = "\n".join(x for x in text.split("\n") if not x.startswith("-DOCSTART-"))
    text = text.replace("\n\n", "\n-X- -X- O O\n\n", 1)  # a gold word -X- ends a sentence
    src = tmp_path / "in.txt"
    src.write_text(text.lstrip("\n"), encoding="utf-8")
    out = tmp_path / "out.txt"
    printed = tagger.predict(run_dir(exp, rec), str(src), output=str(out))
    written = out.read_text(encoding="utf-8")
    assert ("-DOCSTART-" in written) == docstart
    want = io.BytesIO()
    conlleval.main([], io.BytesIO(out.read_bytes()), want, io.StringIO())
    assert printed == want.getvalue().decode("utf-8") + f"(predictions in {out})\n"
    tokens = sum(1 for x in written.split("\n") if x and not x.startswith("-X- "))
    assert f"processed {tokens} tokens" in printed


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


def put(out, cfg, dev=90.0, test=None, **extra):
    """A result.json as run_one writes one (only what the tables read), in OUT/run-KEY/."""
    key = experiments.run_key(cfg)
    rec = dict(key=key, config=asdict(cfg), dev=dict(f1=dev), test=dict(f1=dev if test is None
                                                                          else test),
               data_id=corpora.data_id(cfg.data, cfg.lang),
               model_id=experiments.model_id(cfg.model), **extra)
    os.makedirs(os.path.join(out, f"run-{key}"), exist_ok=True)
    atomic.write_text(os.path.join(out, f"run-{key}", "result.json"), json.dumps(rec))
    return rec


def test_model_dir_with_and_without_slash_is_one_row(tmp_path):
    """"/models/m" and "/models/m/" are one model id, so seeds of both pool in one table row."""
    for seed, model in ((1, "/models/m"), (2, "/models/m/")):
        put(str(tmp_path), FinetuneConfig(model=model, data=TINY, seed=seed))
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
    assert len({experiments.run_key(FinetuneConfig(model=m, data=TINY)) for m in names}) == 1
    out = tmp_path / "out"
    for seed, m in enumerate(names, start=1):
        put(str(out), FinetuneConfig(model=m, data=TINY, seed=seed))
    rows = [r for r in tables.table(str(out)).split("\n") if r.startswith("| en ")]
    assert len(rows) == 1 and "| 4 |" in rows[0], rows


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
                            Experiment(out=out, save=False), log=quiet)
    for where in (work, tmp_path):
        monkeypatch.chdir(where)
        rows = tables.table(out).split("\n\n")[0].split("\n")[2:]
        assert len(rows) == 1 and rows[0].split(" | ")[1] == "tiny"
        assert rows[0].split(" | ")[7] == "3"


def test_run_key_follows_the_data_bytes_not_the_path(tmp_path):
    """The key hashes the split files' bytes: `dir/` and `dir` are one run, a copy elsewhere is the
    same run, an edited file a new one; the model id loses a trailing slash; GermEval's inner
    level is another run than its outer one; the command line's `--warmup 0` is warmup 0.0."""
    copy_dir = tmp_path / "copy"
    shutil.copytree(TINY, copy_dir)
    cfg = FinetuneConfig(data=str(copy_dir))
    key = experiments.run_key
    assert key(cfg) == key(replace(cfg, data=str(copy_dir) + "/")) == key(replace(cfg, data=TINY))
    assert key(replace(cfg, model="x/")) == key(replace(cfg, model="x"))
    germeval = replace(cfg, lang="germeval", data=TARGETS["germeval"])
    assert key(replace(germeval, level="inner")) != key(germeval)
    assert key(parse(["train", "--warmup", "0", "--data", TINY])[0]) == key(
        replace(cfg, warmup=0.0))
    with open(copy_dir / "test.txt", "a") as f:
        f.write("\nEU NNP B-NP B-ORG\n")
    assert key(cfg) != key(replace(cfg, data=TINY))


def test_the_masked_lm_stage_is_shared_by_the_runs_that_train_the_same_one():
    """stage_key: the task-only fields (scheme, epochs, delta, unfreeze, ...) do not name the
    stage; its own (lm_epochs, lr, batch, seed, model, data) do."""
    cfg = FinetuneConfig(data=TINY, lm_epochs=10)
    same = [replace(cfg, scheme="bio"), replace(cfg, epochs=5, delta=2.6, unfreeze=3),
            replace(cfg, schedule="constant")]
    other = [replace(cfg, lm_epochs=20), replace(cfg, seed=2), replace(cfg, lr=5e-5)]
    assert {experiments.stage_key(c) for c in same} == {experiments.stage_key(cfg)}
    assert experiments.stage_key(cfg) not in {experiments.stage_key(c) for c in other}


def test_read_splits_reads_once_per_process_for_the_same_inputs(tmp_path, monkeypatch):
    """The runs of a grid share one reading of their data (corpora.read_splits is memoised):
    runs that differ in seed, rate or batch get the same object; another scheme is read again."""
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    reads = []
    real = conll.read_conll
    monkeypatch.setattr(conll, "read_conll", lambda p, *a: reads.append(p) or real(p, *a))
    cfg = FinetuneConfig(model=folder, data=str(data))
    tok = corpora.vocabulary(folder)
    first = corpora.read_splits(cfg, tok)
    assert len(reads) == 3  # train, dev, test
    again = corpora.read_splits(replace(cfg, seed=7, lr=5e-5, batch_size=32), tok)
    assert again is first and len(reads) == 3
    bio = corpora.read_splits(replace(cfg, scheme="bio"), tok)
    assert len(reads) == 6 and bio[0]["train"].feats is not first[0]["train"].feats


# ---------------------------------------------------------------------------------------------
# The grid, with a stand-in for train(): fast and hand-worked.

def test_grid_picks_best_mean_dev_and_resumes(tmp_path, monkeypatch):
    """12 settings x 2 seeds = 24 runs, save off. Killed at the 7th run, the restarted grid trains
    only the 18 not done; the choice is the best mean dev, its 2 runs' test F1 82.1 and 82.2."""
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), seeds=2, save=False)
    runs = experiments.grid_runs(cfg, exp)
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls, fail_at=7))
    with pytest.raises(KeyboardInterrupt):
        experiments.run_all(runs, exp, log=quiet)
    assert len(tables.results(exp.out)) == 6 and len(os.listdir(tmp_path)) == 6
    calls.clear()
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    experiments.run_all(runs, exp, log=quiet)
    best, recs = experiments.choose(runs, exp.out, log=quiet)
    assert len(calls) == 18
    done = tables.results(exp.out)
    settings = {tuple(r["config"][k] for k in ("batch_size", "lr", "epochs", "seed")) for r in done}
    assert len(done) == len(settings) == 24 and {s[3] for s in settings} == {1, 2}
    assert (best.batch_size, best.lr, best.epochs) == (16, 3e-5, 4)
    assert sorted(r["config"]["seed"] for r in recs) == [1, 2]
    assert sorted(r["test"]["f1"] for r in recs) == pytest.approx([82.1, 82.2])


def test_shards_split_the_grid_without_overlap(tmp_path, monkeypatch):
    """--shard=0/3, 1/3, 2/3 train disjoint thirds of the 24 runs; before the last shard the
    choice waits (None); after it the table is the one a single process prints."""
    cfg = FinetuneConfig(data=TINY)
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    exp = Experiment(out=str(tmp_path / "split"), seeds=2, save=False)
    runs = experiments.grid_runs(cfg, exp)
    for i in range(3):
        before = len(calls)
        experiments.run_all(runs, replace(exp, shard=f"{i}/3"), log=quiet)
        got = experiments.choose(runs, exp.out, log=quiet)
        assert len(calls) - before == 8 and (got is None) == (i < 2)
    assert len({experiments.run_key(c) for c in calls}) == 24
    whole = Experiment(out=str(tmp_path / "whole"), seeds=2, save=False)
    experiments.run_all(runs, whole, log=quiet)
    assert tables.table(exp.out) == tables.table(whole.out)


def test_shard_of_keeps_a_masked_lm_stage_in_one_shard():
    """Runs are grouped by their masked-LM stage (else by run key) and shard i/n takes every n-th
    group from the i-th. A grid with --lm_epochs 1 at 2 seeds: 24 runs, 12 stages (the 3- and
    4-epoch runs of one batch, rate and seed share theirs): 0/2 and 1/2 take 12 runs each, no run
    twice, and each stage's two runs in one shard; 3 shards of 12 groups take 4 groups each.
    Plain runs are each their own group: 0/5 of the 24 takes the 1st, 6th, ... run."""
    exp = Experiment(seeds=2)
    runs = experiments.grid_runs(FinetuneConfig(data=TINY, lm_epochs=1), exp)
    key = experiments.run_key
    stages = {experiments.stage_key(c) for c in runs}
    assert len(runs) == 24 and len(stages) == 12
    halves = [experiments.shard_of(runs, f"{i}/2") for i in range(2)]
    assert [len(h) for h in halves] == [12, 12]
    assert sorted(key(c) for h in halves for c in h) == sorted(key(c) for c in runs)
    for s in stages:
        assert [sum(experiments.stage_key(c) == s for c in h) for h in halves] in ([2, 0], [0, 2])
    assert [len(experiments.shard_of(runs, f"{i}/3")) for i in range(3)] == [8, 8, 8]
    plain = experiments.grid_runs(FinetuneConfig(data=TINY), exp)
    assert experiments.shard_of(plain, "0/5") == plain[0::5]
    assert experiments.shard_of(plain, "0/1") == plain


def test_run_all_says_which_run_each_line_is_of(tmp_path, monkeypatch):
    """Each run's lines start "[run i/n]", n this shard's runs; a done run says it was skipped."""
    cfg, exp = FinetuneConfig(data=TINY), Experiment(out=str(tmp_path), seeds=2, save=False)
    runs = experiments.grid_runs(cfg, exp)[:4]
    monkeypatch.setattr(finetune, "train", fake_train([]))
    experiments.run_one(runs[1], exp, log=quiet)  # done before
    log = []
    experiments.run_all(runs, exp, log.append)
    assert [x.split(" run ")[0] for x in log] == [f"[run {i}/4]" for i in range(1, 5)]
    assert log[1].endswith("done before, skipped") and "dev F1 80.10" in log[0]
    log.clear()
    experiments.run_all(runs, replace(exp, shard="1/2"), log.append)
    assert [x.split(" run ")[0] for x in log] == ["[run 1/2]", "[run 2/2]"]


GRID_ORDER = sorted((b, lr, e) for b in paper.GRID["batch_size"] for lr in paper.GRID["lr"]
                    for e in paper.GRID["epochs"])


@pytest.mark.parametrize("settings, seeds, want", [
    (GRID_ORDER, {}, (16, 2e-5, 3)),  # the whole grid, all tied: the first in sorted order
    ([(16, 3e-5, 4), (32, 5e-5, 3)], {}, (16, 3e-5, 4)),  # not the whole grid: the paper's
    ([(32, 2e-5, 4), (32, 5e-5, 3)], {(32, 2e-5, 4): 2}, (32, 2e-5, 4)),  # neither: most runs
    ([(32, 2e-5, 4), (32, 5e-5, 3)], {}, (32, 5e-5, 3))])  # ... tied too: sorted order
def test_ties_on_dev_choose_and_the_table_pick_the_same_setting(tmp_path, monkeypatch, settings,
                                                                seeds, want):
    """Every run scores dev 90 (tied). One rule, tables.chosen: the whole grid -> the best mean dev,
    the first of the ties in sorted order of the settings' JSON (its keys in order: batch_size,
    then epochs, then lr; so 16 before 32, 3 epochs before 4, "2e-05" before "3e-05"); plain runs
    that are not the whole grid -> the paper's setting (fn 11) where it ran, else the one with
    the most runs (the first in that order where they tie). experiments.choose, the table's ✓
    row and Table 2's row name the same setting."""
    monkeypatch.setattr(finetune, "train", fake_train([], dev_of=lambda c: 90.0))
    exp = Experiment(out=str(tmp_path), save=False)
    runs = [FinetuneConfig(data=TINY, batch_size=b, lr=lr, epochs=e, seed=s)
            for b, lr, e in settings for s in range(1, seeds.get((b, lr, e), 1) + 1)]
    experiments.run_all(runs, exp, log=quiet)
    c, _ = experiments.choose(runs, exp.out, log=quiet)
    assert (c.batch_size, c.lr, c.epochs) == want
    text = tables.table(exp.out)
    ticked = [r.split(" | ")[3:6] for r in text.split("\n\n")[0].split("\n") if r.endswith("✓ |")]
    assert ticked == [[str(want[0]), f"{want[1]:g}", str(want[2])]]
    table2 = [r for r in text.split("Table 2: English")[1].split("\n")
              if r.startswith("| bert-base-multilingual-cased | IOB1 |")]
    assert len(table2) == 1 and f"| {want[0]}, {want[1]:g}, {want[2]} ep |" in table2[0], table2


# ---------------------------------------------------------------------------------------------
# reproduce: Tables 2-3 at the paper's setting, and with --ablations Tables 4-6.

DEU = os.path.join(FIXTURES, "deu_tiny")


@pytest.mark.parametrize("lang, data, epochs", [("en", TINY, 4), ("de", DEU, 3),
                                                ("germeval", FIXTURES + "/germeval_tiny", 3)])
def test_reproduce_plans_the_papers_setting_german_at_3_epochs(lang, data, epochs):
    """reproduce without --grid runs the paper's setting for the language: English fn 11's batch
    16, lr 3e-5, 4 epochs; German (and GermEval standing in) 3 epochs (Sec 4.1.1), both schemes
    (GermEval: BIO only) x --seeds; --epochs/--lr/--batch-size given on the command line win."""
    cfg, exp = parse(["reproduce", "--lang", lang, "--data", data, "--seeds", "2"])
    runs = experiments.reproduce_runs(cfg, exp)
    schemes = ["bio"] if lang == "germeval" else ["iob1", "bio"]
    assert [(c.scheme, c.seed) for c in runs] == [(s, k) for s in schemes for k in (1, 2)]
    assert {(c.batch_size, c.lr, c.epochs) for c in runs} == {(16, 3e-5, epochs)}
    cfg, exp = parse(["reproduce", "--lang", lang, "--data", data, "--epochs", "2", "--lr",
                      "1e-4"])
    given = {"epochs", "lr"}
    assert {(c.batch_size, c.lr, c.epochs) for c in experiments.reproduce_runs(
        cfg, exp, given)} == {(16, 1e-4, 2)}


@pytest.mark.parametrize("name, lang, tables_run", [
    ("bert-base-multilingual-cased", "en", {4}), ("bert-base-cased", "en", {4, 56}),
    ("bert-base-multilingual-cased", "de", {4, 56}), ("some-other-bert", "en", {4, 56})])
def test_ablations_plan_what_the_paper_ran_for_the_model(tmp_path, name, lang, tables_run):
    """--ablations plans only the tables the paper ran for the model and language (a local folder
    named like the paper's model counts as it): mBERT English Table 4 alone (16 runs at 4 seeds, 2
    of them Table 2's IOB1 runs), English BERT-base and mBERT German 4 and 5/6 (+ the task search's
    3 rates x 3 deltas x 2 seeds, + 2 LM lengths x 2 seeds), a model it never ran all of them.
    (German plans its plain runs at 3 epochs: there Table 2's IOB1 runs are Table 4's 3-epoch
    seeds 1-2, in English its 4-epoch ones.)"""
    model = bert_folder(str(tmp_path / name), layers=1, hidden=8, mlm=True)
    data = TINY if lang == "en" else DEU
    cfg, exp = parse(["reproduce", "--lang", lang, "--data", data, "--model", model, "--seeds",
                      "2", "--ablations"])
    runs = experiments.reproduce_runs(cfg, exp)
    distinct = {json.dumps(asdict(c), sort_keys=True) for c in runs}
    assert len(distinct) == 4 + 14 + (18 + 4) * (56 in tables_run)
    assert any(c.lm_epochs for c in runs) == (56 in tables_run)


def test_reproduce_ablations_run_tables_4_to_6_as_the_paper_did(tmp_path, monkeypatch, capsys):
    """reproduce --ablations with a model the paper never ran (all tables), Table 2 at 2 seeds:
    IOB1 and BIO plain (4 runs); Table 4 at the chosen (16, 3e-5), IOB1: with and without warmup
    as 3- and 4-epoch runs, 4 seeds (16, two of them Table 2's IOB1 runs: 14 new); Table 5's task
    search, lr {2e-5, 3e-5, 5e-5} x delta {2.6, 1.6, 1} with unfreeze 3 over 5 epochs, 2 seeds
    (18); then its LM rows at the search's choice (the fake dev F1 follows lr alone: 3e-5; the
    deltas tie, and the first in sorted order is delta 1.0), 10 and 20 masked-LM epochs, 2 seeds
    (4), each with its own masked-LM stage. 40 runs, all IOB1 but Table 2's BIO; Tables 2, 4
    and "Ours, not in the paper: Table 5's rows" printed."""
    calls, stages = [], []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    monkeypatch.setattr(experiments, "lm_stage", lambda c, e, log: stages.append(c) or "lm")
    exp = Experiment(out=str(tmp_path / "runs"), seeds=2, ablations=True, save=False)
    model = bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True)
    experiments.reproduce(FinetuneConfig(model=model, data=TINY), exp, log=quiet)
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
    assert lm == [(n, 3e-5, 1.0, 3, 5, k) for n in (10, 20) for k in (1, 2)]
    assert [(c.lm_epochs, c.seed) for c in stages] == [(n, k) for n in (10, 20) for k in (1, 2)]
    printed = capsys.readouterr().out
    assert all(t in printed for t in ("Table 2: English", "Table 4:",
                                      "Ours, not in the paper: Table 5's rows"))


def test_reproduce_ablations_wait_for_the_choices_they_start_from(tmp_path, monkeypatch):
    """Two shards: the first finds the plain runs' choice waiting on the second, trains no
    ablation run and fails saying so; the second makes the choice, runs its half of Table 4 and
    the search, and the LM rows wait for the first shard's half; a rerun of each finishes the
    plan (40 runs, each trained once)."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    monkeypatch.setattr(experiments, "lm_stage", lambda c, e, log: "lm")
    exp = Experiment(out=str(tmp_path / "runs"), seeds=2, ablations=True, save=False)
    cfg = FinetuneConfig(model=bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True),
                         data=TINY)
    with pytest.raises(RuntimeError, match="^Tables 4-6 wait for the plain runs of other shards: "
                                           "run the same command again once they finish$"):
        experiments.reproduce(cfg, replace(exp, shard="0/2"), log=quiet)
    with pytest.raises(RuntimeError, match="^the LM rows of Tables 5-6 wait for the task search"):
        experiments.reproduce(cfg, replace(exp, shard="1/2"), log=quiet)
    assert len(calls) == 2 + 2 + 16 and not any(c.lm_epochs for c in calls)
    for shard in ("0/2", "1/2", "0/2"):
        experiments.reproduce(cfg, replace(exp, shard=shard), log=quiet)
    assert len(calls) == 40 == len({experiments.run_key(c) for c in calls})


def test_a_shard_with_no_run_of_its_own_waits_rather_than_failing(tmp_path, monkeypatch, capsys):
    """--seeds 1 --shard 2/3: Table 2's two plain runs go to shards 0 and 1, none to shard 2, which
    started first (a job array) finds nothing done in OUT: it prints no table and fails with the
    wait, not with "holds no finished run" (it used to)."""
    monkeypatch.setattr(finetune, "train", lambda *a, **k: pytest.fail("trained"))
    exp = Experiment(out=str(tmp_path), seeds=1, ablations=True, save=False, shard="2/3")
    with pytest.raises(RuntimeError, match="^Tables 4-6 wait for the plain runs of other shards"):
        experiments.reproduce(FinetuneConfig(data=TINY), exp, log=quiet)
    assert capsys.readouterr().out == "" and os.listdir(tmp_path) == []


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
        FinetuneConfig(model=headless, data=TINY), exp))


def test_reproduce_ablations_end_to_end_on_a_slice(tmp_path, capsys):
    """`reproduce --ablations` through the command line with a small random BERT that has a
    masked-LM head, on 16 training sentences at lr 1e-3: Table 2's 2 plain runs, Table 4's 16
    (one of them Table 2's IOB1 run), the task search's 24 (eta_0 in Table 1's three rates and
    the chosen 1e-3, x 3 deltas x 2 seeds), then the LM rows' 4, their 4 masked-LM stages (10 and
    20 epochs, seeds 1 and 2) trained and kept in OUT/lm-KEY: 45 run folders, each with its
    result, and the printed tables: Table 2, Table 4, and Table 5's four rows filled."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, mlm=True)
    out = tmp_path / "out"
    experiments.main(["reproduce", "--model", folder, "--data", TINY, "--out", str(out),
                      "--seeds", "1", "--ablations", "--save", "false", "--lr", "1e-3",
                      "--max-train-sentences", "16", "--batch-size", "8", "--cleanconll", "off"])
    text = capsys.readouterr().out
    recs = tables.results(str(out))
    runs = [n for n in os.listdir(out) if n.startswith("run-")]
    assert len(recs) == len(runs) == 2 + 15 + 24 + 4
    stages = {f"lm-{experiments.stage_key(FinetuneConfig(**r['config']))}"
              for r in recs if r["config"]["lm_epochs"]}
    assert len(stages) == 4 and all((out / k / "model.safetensors").is_file() for k in stages)
    assert sorted(n for n in os.listdir(out) if n.startswith("lm-")) == sorted(stages)
    assert "Table 2: English" in text and "Table 4:" in text and "Table 5's rows" in text
    table5 = [r for r in text.split("Table 5's rows")[1].split("\n\n")[1].split("\n")[2:] if r]
    assert len(table5) == 4 and all(" | – | – | – |" not in row for row in table5), table5


def test_reproduce_de_needs_the_licensed_folder(tmp_path):
    with pytest.raises(ValueError, match="deu.train, deu.testa and deu.testb"):
        experiments.main(["reproduce", "--lang", "de", "--out", str(tmp_path)])


def test_germeval_reproduce_is_bio_only_and_level_needs_germeval(tmp_path, monkeypatch):
    """reproduce --lang germeval (scheme left at its iob1 default): BIO alone, the files' scheme,
    for Tables 4-6 too: 1 plain run (3 epochs), Table 4's 16 (one of them the plain run), the
    search's 18 and the 4 LM rows = 38 runs, all BIO; --level inner without --lang germeval is an
    error naming the flag."""
    calls = []
    monkeypatch.setattr(finetune, "train", fake_train(calls))
    monkeypatch.setattr(experiments, "lm_stage", lambda c, e, log: "lm")
    model = bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True)
    cfg = FinetuneConfig(lang="germeval", data=TARGETS["germeval"], model=model)
    exp = Experiment(out=str(tmp_path / "runs"), seeds=1, save=False, ablations=True)
    experiments.reproduce(cfg, exp, log=quiet)
    assert [c.scheme for c in calls] == ["bio"] * 38 and calls[0].epochs == 3
    with pytest.raises(ValueError, match="--level inner"):
        experiments.main(["train", "--level", "inner", "--out", str(tmp_path)])


# ---------------------------------------------------------------------------------------------
# The command line: each command its own flags, typed and ranged by argparse.

def parse(argv):
    """The command line's cfg and exp, as main builds them, without running anything."""
    args = vars(experiments.parser().parse_args(argv))
    cmd = args.pop("cmd")
    names = set(asdict(FinetuneConfig()))
    base = replace(FinetuneConfig(), **experiments.DEMO) if cmd == "demo" else FinetuneConfig()
    return (replace(base, **{k: v for k, v in args.items() if k in names}),
            Experiment(**{k: v for k, v in args.items() if k not in names}))


def test_flags_take_both_forms_and_their_types():
    """--lr 5e-5 and --lr=5e-5, --batch-size and --batch_size; bools read true/false/1/0, and a
    bool flag alone reads true."""
    cfg, exp = parse(["train", "--lr", "5e-5", "--batch-size=32", "--epochs", "3", "--scheme=bio",
                      "--save", "FALSE", "--clip_each=1", "--delta", "2", "--seed=0",
                      "--warmup", "1e-1", "--eval-batch-size", "8"])
    got = (cfg.lr, cfg.batch_size, cfg.epochs, cfg.scheme, exp.save, cfg.clip_each, cfg.delta,
           cfg.seed, cfg.warmup, exp.eval_batch_size)
    assert got == (5e-5, 32, 3, "bio", False, True, 2.0, 0, 0.1, 8)
    assert [type(x) for x in got] == [float, int, int, str, bool, bool, float, int, float, int]
    _, exp = parse(["grid", "--shard", "1/4", "--seeds=2"])
    assert (exp.shard, exp.seeds) == ("1/4", 2)
    _, exp = parse(["reproduce", "--lang", "en", "--ablations"])  # a bool alone is true, as
    assert exp.ablations is True  # `make reproduce-en ARGS=--ablations` passes it
    cfg, exp = parse(["demo", "--epochs", "1"])
    assert (cfg.epochs, cfg.lr, cfg.max_train_sentences) == (1, 1e-4, 1500)


BAD_FLAGS = [
    (["train", "--batch_size=16.0"], "argument --batch-size/--batch_size: invalid int value"),
    (["train", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    (["train", "--save=yes"], "'yes': expected true or false"),
    (["train", "--clip_each", "2"], "'2': expected true or false"),
    (["train", "--learning_rate=3e-5"], "unrecognized arguments: --learning_rate=3e-5"),
    (["train", "--clip=-1"], "argument --clip: -1: must be > 0"),
    (["train", "--lr", "0"], "argument --lr: 0: must be > 0"),
    (["train", "--lr", "nan"], "nan: not a finite number"),
    (["train", "--lr", "inf"], "inf: not a finite number"),
    (["train", "--warmup", "1"], "argument --warmup: 1: must be <= 0.999"),
    (["train", "--max_len", "2"], "must be >= 3"),
    (["train", "--max_len", "3.5"], "invalid int value: '3.5'"),
    (["train", "--epochs", "0"], "argument --epochs: 0: must be >= 1"),
    (["train", "--max-train-sentences", "-70"], "-70: must be >= 0"),
    (["train", "--scheme", "iobes"], "argument --scheme: invalid choice: 'iobes'"),
    (["train", "--eval_batch_size=-1"], "-1: must be >= 0"),
    (["train", "--schedule=stlr", "--stlr_ratio=0"], "0: must be >= 1"),
    (["train", "--delta", "1e200"], "argument --delta: 1e200: must be <= 16"),
    (["train", "--delta", "1e-300"], "argument --delta: 1e-300: must be >= 0.0625"),
    (["train", "--delta", "1e999"], "1e999: not a finite number"),
    (["train", "--delta", "0x10"], "argument --delta: invalid float value: '0x10'"),
    (["grid", "--seeds", "0"], "argument --seeds: 0: must be >= 1")]


@pytest.mark.parametrize("argv, match", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_argparses_usage_errors(argv, match, capsys):
    """A bad value, type or name is refused while the command line is parsed: argparse's usage and
    one error line on stderr, exit status 2, nothing run."""
    with pytest.raises(SystemExit) as e:
        experiments.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: experiments.py ")
    last = err.strip().split("\n")[-1]  # unknown flags are the top parser's to name
    assert re.match(rf"experiments.py( {argv[0]})?: error: ", last) and match in last, err


OTHERS = [(["train", "--shard", "0/2"], "--shard 0/2"), (["train", "--seeds=3"], "--seeds=3"),
          (["train", "--seeds", "2"], "--seeds 2"), (["train", "--ablations"], "--ablations"),
          (["reproduce", "--delta", "2.6"], "--delta 2.6"),
          (["reproduce", "--seed", "2"], "--seed 2"),
          (["reproduce", "--unfreeze", "3"], "--unfreeze 3"),
          (["reproduce", "--lm_epochs", "10"], "--lm_epochs 10"),
          (["grid", "--lr=3e-5"], "--lr=3e-5"), (["grid", "--seed", "3"], "--seed 3"),
          (["grid", "--ablations"], "--ablations"), (["demo", "--model", "x"], "--model x"),
          (["demo", "--zero_shot", "x"], "--zero_shot x"), (["demo", "--shard", "0/2"],
                                                            "--shard 0/2"),
          (["table", "--lr", "1"], "--lr 1"), (["explain", "--out", "x"], "--out")]


@pytest.mark.parametrize("argv, flag", OTHERS, ids=[" ".join(a) for a, _ in OTHERS])
def test_each_command_rejects_another_commands_flags(argv, flag, capsys):
    """Each subcommand takes only its own flags (experiments.COMMANDS): train no --shard, grid no
    --lr (it searches Table 1's), reproduce none of the ablation fields it plans itself, demo no
    --model (MiniLM): argparse's "unrecognized arguments", exit 2."""
    with pytest.raises(SystemExit) as e:
        experiments.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: unrecognized arguments: {flag}" in err, err


@pytest.mark.parametrize("argv, match", [
    (["train", "--level", "inner"], "--level inner: only GermEval 2014 has an inner level"),
    (["train", "--schedule", "stlr", "--warmup", "0"], "--schedule stlr needs --warmup > 0"),
    (["train", "--lang", "de", "--cleanconll", TINY], "--cleanconll DIR scores English-trained "
                                                      "runs; --lang is de: use --lang en"),
    (["train", "--lang", "germeval", "--zero_shot", "es"], "a GermEval run tags its 12"),
    (["train", "--zero_shot", f"es,{TINY}"], f"--zero_shot es,{TINY}: '{TINY}' is none of en, de, "
                                              f"germeval, es, nl; name each as LANG or LANG=DIR"),
    (["reproduce", "--lang", "nl", "--ablations"], "--ablations: Tables 4-6 are the paper's "
                                                   "English and German runs; --lang nl has none"),
    (["train", "--zero_shot_keep"], "--zero_shot_keep applies to GermEval zero-shot data"),
    (["train", "--cleanconll", "/no/such/dir"], "--cleanconll /no/such/dir: no such folder"),
    (["grid", "--shard", "2/2"], "--shard 2/2: expected i/n with 0 <= i < n"),
    (["grid", "--shard", "1-2"], "--shard 1-2: expected i/n"),
    (["grid", "--shard", "01/2"], None),
    (["reproduce", "--grid", "--lr", "3e-5"], "--grid searches Table 1's values; drop --lr")])
def test_what_no_one_flag_can_say_alone_is_checked_before_any_work(tmp_path, monkeypatch, argv,
                                                                   match):
    """experiments.check's cross-field checks: a ValueError naming the flags, before any run."""
    monkeypatch.setattr(finetune, "train", None)  # training would call it
    monkeypatch.setattr(experiments, "check_ready", lambda *a: pytest.fail("got past the checks"))
    if match is None:  # "01/2" is shard 1 of 2, as int() reads it
        assert parse(argv)[1].shard == "01/2"
        experiments.check(FinetuneConfig(), parse(argv)[1])
        return
    with pytest.raises(ValueError, match=re.escape(match)):
        experiments.main(argv + ["--out", str(tmp_path / "out")])
    assert not os.path.exists(tmp_path / "out")


def test_help_lists_every_flag_with_type_default_and_meaning(capsys):
    """train -h: every FinetuneConfig field and the run's own flags, each with its type, default
    and the comment on its line; grid -h: --seeds and --shard, no --lr."""
    with pytest.raises(SystemExit):
        experiments.main(["train", "-h"])
    out = capsys.readouterr().out
    for f in list(asdict(FinetuneConfig())) + experiments.RUN:
        assert f"--{f.replace('_', '-')}" in out, f
    assert re.search(r"--lr FLOAT\s+Table 1 grid", out) and "(default: 3e-05)" in out
    assert "--shard" not in out and "--seeds" not in out
    with pytest.raises(SystemExit):
        experiments.main(["grid", "-h"])
    out = capsys.readouterr().out
    assert all(f in out for f in ("--seeds INT", "--shard STR"))
    assert "--lr" not in out and "--seed " not in out


def test_a_masked_lm_stage_without_a_head_fails_before_any_work(tmp_path, monkeypatch):
    """--lm_epochs on a checkpoint with no masked-LM head is an error before the first run; with
    a head the checks pass."""
    headless = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    monkeypatch.setattr(finetune, "train", None)  # training would call it
    with pytest.raises(ValueError, match="has no masked-LM head"):
        experiments.main(["train", "--lm_epochs=1", "--model", headless, "--data", TINY,
                          "--out", str(tmp_path / "out")])
    assert os.listdir(tmp_path / "out") == []
    with_head = bert_folder(str(tmp_path / "mlm"), layers=1, hidden=8, mlm=True)
    cfg = FinetuneConfig(model=with_head, data=TINY, lm_epochs=1)
    experiments.check_ready(cfg, Experiment(out=str(tmp_path / "out")), [cfg])


def test_a_grid_whose_saved_models_would_fill_the_disk_fails_before_any_work(tmp_path,
                                                                             monkeypatch):
    """The models a command will save (a tagger per run of its shard not done yet, each masked-LM
    stage), each the checkpoint's size, are weighed against OUT's free space first: the 120
    taggers of a full mBERT grid (85 GB) would otherwise fill a 64 GB disk after 90 runs."""
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
            f"of {size / 1e9:.2f} GB: pass --save false")):
        experiments.main(argv)
    assert os.listdir(out) == []
    cfg = FinetuneConfig(model=folder, data=TINY)
    exp = Experiment(out=str(out), seeds=1)
    runs = experiments.grid_runs(cfg, exp)
    experiments.check_ready(cfg, replace(exp, save=False), runs)  # nothing saved: room
    experiments.check_ready(cfg, replace(exp, shard="0/2"), runs)  # 6 runs of this shard
    for c in runs[:2]:  # done runs save nothing more
        put(str(out), c)
    free[0] = 10 * size
    experiments.check_ready(cfg, exp, runs)
    # 3 and 4 epochs of one (batch, lr, seed) share their masked-LM stage: 4 taggers, 2 stages
    lm = [replace(c, lm_epochs=e) for c in runs[2:4] for e in (10, 20)]
    free[0] = 5 * size
    with pytest.raises(ValueError, match=r"the 4 runs to go would write 6 models"):
        experiments.check_ready(cfg, exp, lm)
    for c in lm[:2]:
        stage = out / f"lm-{experiments.stage_key(c)}"
        stage.mkdir(exist_ok=True)
        (stage / "model.safetensors").write_bytes(b"")  # a stage written already is not counted
    experiments.check_ready(cfg, exp, lm)


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_bad_out_is_named_in_the_flags_words(tmp_path, where):
    """--out that is a file, or a path under one: "--out PATH: cannot write there (why)", not a
    raw [Errno 17] / [Errno 20] naming a temporary file."""
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" if where == "a file" else tmp_path / "f" / "sub"
    cfg = FinetuneConfig(data=TINY)
    with pytest.raises(ValueError, match=re.escape(f"--out {out}: cannot write there (")) as e:
        experiments.check_ready(cfg, Experiment(out=str(out)), [cfg])
    assert "Errno" not in str(e.value)


@pytest.mark.parametrize("extra", [1, -1])
def test_a_vocab_that_is_not_the_checkpoints_fails_before_any_work(tmp_path, extra):
    """vocab.txt one line longer than config.json's vocab_size (an IndexError at the first forward
    pass) or one shorter (accepted, and tagging garbage): both are errors naming the two files,
    from train() and from the command line's checks alike."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=8)
    vocab = os.path.join(folder, "vocab.txt")
    lines = open(vocab, encoding="utf-8").read().split("\n")[:-1]
    lines = lines + ["zzzextra"] if extra > 0 else lines[:-1]
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    corpora.vocabulary.cache_clear()  # this folder's old vocabulary may be memoised
    match = rf"vocab.txt has {len(lines)} pieces but .*config.json says vocab_size"
    with pytest.raises(ValueError, match=match):
        finetune.train(FinetuneConfig(model=folder, data=TINY), fit=None)
    with pytest.raises(ValueError, match=match):
        experiments.main(["train", "--model", folder, "--data", TINY, "--out", str(tmp_path)])


# ---------------------------------------------------------------------------------------------
# German without a licence: GermEval 2014 runs and zero-shot scores (Wu & Dredze 2019).

TARGETS = {"de": os.path.join(FIXTURES, "deu_tiny"), "germeval": os.path.join(FIXTURES,
                                                                           "germeval_tiny"),
           "es": os.path.join(FIXTURES, "es_tiny"), "nl": os.path.join(FIXTURES, "nl_tiny")}
EVERY = ",".join(f"{lang}={d}" for lang, d in TARGETS.items())  # --zero_shot, all of them


def report_f1(report):
    """The overall FB1 of a conlleval report (its second line)."""
    return float(re.search(r"FB1:\s+([\d.]+)", report).group(1))


@pytest.fixture(scope="module")
def learnt_run(tmp_path_factory):
    """A saved English-data run whose tiny model has learnt the German dev and test sentences by
    heart (CoNLL types; 60 epochs, ~3 s), so that its zero-shot F1 there is not 0 and a scheme or
    ordering mistake would show."""
    tmp = tmp_path_factory.mktemp("xling")
    sents = [s for lang in ("de", "germeval") for split in ("dev", "test")
             for s in corpora.eval_sets(lang, TARGETS[lang])[split]]
    os.makedirs(tmp / "data")
    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp / "data" / name).write_text(conll.conll_text(sents, [s.tags for s in sents]),
                                         encoding="utf-8")
    folder = bert_folder(str(tmp / "bert"), layers=2, hidden=32, data=str(tmp / "data"))
    cfg = FinetuneConfig(model=folder, data=str(tmp / "data"), scheme="bio", lr=3e-3,
                         batch_size=2, epochs=60, warmup=0.0)
    exp = Experiment(out=str(tmp / "runs"))
    return cfg, exp, experiments.run_one(cfg, exp, log=quiet)


def test_zero_shot_scores_a_done_run_as_predict_does(learnt_run, tmp_path):
    """A run done without --zero_shot, asked again with every target, is scored from its saved
    folder into run-KEY/zero-shot-ID.json, one per language: dev and test F1 equal the ones
    `predict` reports on the same files (GermEval first written out with its tags mapped to
    CoNLL's types); asking a third time writes nothing more, and `en` (the run's own language)
    is never scored zero-shot."""
    cfg, exp, rec = learnt_run
    exp = replace(exp, zero_shot="en," + EVERY)
    experiments.run_one(cfg, exp, log=quiet)
    experiments.run_one(cfg, exp, log=quiet)
    zs = {z["lang"]: z for z in tables.results(exp.out, "zero-shot-*.json")}
    assert sorted(zs) == sorted(TARGETS) and len(tables.results(exp.out, "zero-shot-*.json")) == 4
    for lang, z in zs.items():
        assert z["run"] == rec["key"] and z["keep"] is False and z["folder"] == TARGETS[lang]
        sets = corpora.eval_sets(lang, TARGETS[lang])
        for split in ("dev", "test"):
            gold = tmp_path / f"{lang}.{split}.conll"
            gold.write_text(conll.conll_text(sets[split], [s.tags for s in sets[split]]),
                            encoding="utf-8")
            report = tagger.predict(run_dir(exp, rec), str(gold),
                                    output=str(tmp_path / f"{lang}.{split}.pred"))
            if lang == "de" or lang == "germeval" and split == "test":  # (GermEval's dev fixture
                assert z[split]["f1"] > 0, "it learnt these sentences: F1 0 is a bug"  # has none)
            assert round(z[split]["f1"], 2) == report_f1(report), (lang, split)
    head = [p for p in tables.table(exp.out).split("\n\n") if p.startswith("| trained on")]
    assert head and head[0].split("\n")[0].split(" | ")[-5:] == ["en", "de", "germeval", "es",
                                                                  "nl |"]


def test_zero_shot_when_trained_needs_no_saved_model(tmp_path):
    """A run trained now with --save false is scored zero-shot from the model in memory: its
    folder holds the scores and no model."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    cfg = FinetuneConfig(model=folder, data=TINY, epochs=1, max_train_sentences=8)
    exp = Experiment(out=str(tmp_path / "runs"), save=False, cleanconll="off",
                     zero_shot=f"nl={TARGETS['nl']}")
    rec = experiments.run_one(cfg, exp, log=quiet)
    (z,) = tables.results(exp.out, "zero-shot-*.json")
    assert z["lang"] == "nl" and z["run"] == rec["key"]
    assert not os.path.exists(os.path.join(run_dir(exp, rec), "model.safetensors"))


def test_zero_shot_of_an_unsaved_run_is_a_warning_not_a_score(trained, tmp_path):
    """A done run with no saved model cannot be scored: one warning naming the run, no zero-shot
    file written."""
    cfg, exp, rec = trained
    out = tmp_path / "runs"
    (out / f"run-{rec['key']}").mkdir(parents=True)
    shutil.copy(os.path.join(run_dir(exp, rec), "result.json"), out / f"run-{rec['key']}")
    logged = []
    experiments.run_one(cfg, Experiment(out=str(out), zero_shot=f"de={TARGETS['de']}"),
                        log=logged.append)
    assert any("no saved model" in s and rec["key"] in s for s in logged)
    assert tables.results(str(out), "zero-shot-*.json") == []
    assert os.listdir(out / f"run-{rec['key']}") == ["result.json"]


def test_zero_shot_targets_are_found_before_training(tmp_path):
    """--zero_shot de=DIR with a folder lacking German's dev and test fails before training,
    naming the files; de with no folder says it is licensed."""
    cfg = FinetuneConfig(data=TINY)
    with pytest.raises(FileNotFoundError, match="deu.testa, deu.testb"):
        experiments.check_ready(cfg, Experiment(out=str(tmp_path), zero_shot=f"de={TINY}"), [cfg])
    with pytest.raises(ValueError, match="CoNLL-2003 German is licensed"):
        experiments.check_ready(cfg, Experiment(out=str(tmp_path), zero_shot="de"), [cfg])


@pytest.mark.parametrize("level", ["outer", "inner"])
def test_germeval_run_trains_and_scores_its_level(tmp_path, level):
    """--lang germeval trains on NER-de-train.tsv at one level and scores that level: the written
    dev file's gold column is read_germeval's tags of that level, the recorded dev scores are
    conlleval's on its predictions against them, and they count the level's own gold spans (the
    dev fixture: one outer, no inner)."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    data = TARGETS["germeval"]
    cfg = FinetuneConfig(model=folder, data=data, lang="germeval", level=level, scheme="bio",
                         lr=1e-3, batch_size=4, epochs=2)
    rec = experiments.run_one(cfg, Experiment(out=str(tmp_path / "runs"), save=False), log=quiet)
    assert rec["config"]["lang"] == "germeval" and rec["config"]["level"] == level
    gold = conll.read_germeval(corpora.splits(data, "germeval")["dev"], level)
    path = os.path.join(tmp_path, "runs", f"run-{rec['key']}", "dev.pred.txt")
    pred = conll.read_conll(path)  # "word gold pred" lines: the last column, pred, as tags
    assert [s.words for s in pred] == [s.words for s in gold]
    cols = [line.split() for line in open(path, encoding="utf-8") if line.strip()]
    assert [c[1] for c in cols if c[0] != conll.DOCSTART] == [t for s in gold for t in s.tags]
    assert rec["dev"] == conlleval.evaluate([s.tags for s in gold], [p.tags for p in pred])
    assert rec["dev"]["gold"] == {"outer": 1, "inner": 0}[level]  # the fixture's dev spans


@pytest.mark.parametrize("lang, pre", [("es", "esp"), ("nl", "ned")])
def test_a_conll2002_run_trains_and_is_scored_as_conlleval_scores_its_files(tmp_path, lang, pre):
    """`train --lang es` / `--lang nl` (CoNLL-2002, BIO files) with IOB1 training: testa is the
    dev set, the predictions come back in the files' scheme, the recorded scores are conlleval's
    on the written dev file, and -DOCSTART- lines are written where the file has them: a Dutch
    article's (conlleval counts it as a token, as in the original), none for Spanish."""
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    data = os.path.join(FIXTURES, f"{lang}_tiny")
    cfg, exp = parse(["train", "--lang", lang, "--data", data, "--model", folder, "--epochs", "1",
                      "--lr", "1e-3", "--batch-size", "8", "--out", str(tmp_path / "runs"),
                      "--save", "false"])
    rec = experiments.run_one(cfg, exp, log=quiet)
    gold = conll.read_conll(os.path.join(data, f"{pre}.testa"))
    path = os.path.join(tmp_path, "runs", f"run-{rec['key']}", "dev.pred.txt")
    pred = conll.read_conll(path)
    assert rec["config"]["lang"] == lang and [s.words for s in pred] == [s.words for s in gold]
    assert rec["dev"] == conlleval.evaluate([s.tags for s in gold], [p.tags for p in pred])
    assert conll.detect_scheme(s.tags for s in pred if any(t != "O" for t in s.tags)) in (
        "bio", None)
    docs = open(path, encoding="utf-8").read().count(conll.DOCSTART)
    assert docs == {"es": 0, "nl": 2}[lang]  # as the file has them


def test_germeval_without_a_folder_downloads_it(monkeypatch):
    """No --data with --lang germeval: the free corpus is downloaded into the cache (GermEval
    2014, CC-BY); CoNLL-2003 German is licensed and says how to get a German row without it."""
    asked = []
    monkeypatch.setattr(corpora, "download",
                        lambda lang, cache, local="": asked.append(lang) or "x")
    assert corpora.data_dir("", "germeval") == "x" and asked == ["germeval"]
    with pytest.raises(ValueError, match="make reproduce-germeval"):
        corpora.data_dir("", "de")


# ---------------------------------------------------------------------------------------------
# CleanCoNLL: an English run's predictions scored on corrected labels too.

CLEAN = os.path.join(FIXTURES, "cleanconll_tiny")


def test_an_english_run_is_scored_on_cleanconll_too(tmp_path, monkeypatch, capsys):
    """`train --cleanconll DIR` on English data: result.json holds CleanCoNLL dev/test scores beside
    CoNLL-2003's, the test one conlleval's on what the saved run predicts for cleanconll.test; the
    table shows the second pair of columns and says what it is. (Building CleanCoNLL from the
    fixture's files is tests/test_cleanconll.py's: here the built files stand in, read once.)"""
    original = os.path.join(CLEAN, "conll2003")
    sets = {s: conll.read_conll(os.path.join(CLEAN, "built", f"cleanconll.{s}"))
            for s in ("dev", "test")}
    monkeypatch.setitem(rescore._CLEAN, (original, os.path.join(CLEAN, "cleanconll")),
                        ("built0123456", sets))
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, data=original)
    out = tmp_path / "out"
    experiments.main(["train", "--model", folder, "--data", original, "--lr", "1e-3",
                      "--batch-size", "4", "--epochs", "2", "--out", str(out),
                      "--cleanconll", os.path.join(CLEAN, "cleanconll")])
    assert "CleanCoNLL: dev F1" in capsys.readouterr().out
    (rec,) = tables.results(str(out))
    assert set(rec["cleanconll"]) == {"data", "dev", "test"} and rec["cleanconll"]["data"] == \
        "built0123456"
    report = tagger.predict(run_dir(Experiment(out=str(out)), rec),
                            os.path.join(CLEAN, "built", "cleanconll.test"),
                            output=str(tmp_path / "p.txt"))
    assert report_f1(report) == round(rec["cleanconll"]["test"]["f1"], 2)
    text = tables.table(str(out))
    assert "| CleanCoNLL dev | CleanCoNLL test |" in text.split("\n")[0]
    assert "CleanCoNLL: the same runs'" in text
    assert text.split("\n")[2].split(" | ")[10] == f"{rec['cleanconll']['dev']['f1']:.2f}"


# ---------------------------------------------------------------------------------------------
# The offline demo.

def test_demo_offline_scores_no_sentence_it_trained_on(tmp_path, monkeypatch, capsys):
    """`make demo` on a machine with no copy of CoNLL-2003 English and no network: it trains on the
    tests' fixture with the dev and test sentences its train holds too left out (16 of its 60
    test sentences are), says so in a few short lines on stderr, and prints what conlleval.pl
    says of the predictions file (tokens counted as predict counts them), then the commands for
    the paper's table, Spanish and Dutch, and zero-shot."""
    import urllib.error

    def offline(url, dest):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(corpora, "_fetch", offline)
    monkeypatch.setattr(corpora, "CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(experiments, "minilm_folder",
                        lambda: bert_folder(str(tmp_path / "bert"), layers=1, hidden=16))
    cfg, exp = parse(["demo", "--epochs", "1", "--out", str(tmp_path / "out"), "--save", "false"])
    experiments.demo(cfg, exp)
    out, err = capsys.readouterr()
    folder = experiments.DEMO_FIXTURE
    train = {tuple(s.words) for s in conll.read_conll(os.path.join(folder, "train.txt"))}
    test = conll.read_conll(os.path.join(folder, "test.txt"))
    full = conll.read_conll(corpora.splits(TINY)["test"])
    assert not any(tuple(s.words) in train for s in test) and len(test) == len(full) - 16
    assert "scored on the test\n      sentences that its training sentences do not hold" in err
    note = err[err.index("note: no CoNLL-2003 English here"):].splitlines()  # after corpora's
    assert all(len(line) <= 80 for line in note) and len(note) == 4, err  # lines, if any
    (rec,) = tables.results(exp.out)
    pred = os.path.join(exp.out, f"run-{rec['key']}", "test.pred.txt")
    report, then = out.split(" sentences:\n", 1)[1].rsplit("next: ", 1)
    assert report == tagger.report_of(pred)  # then one line on where to go next:
    assert "--lang es, --lang nl" in then and then.endswith("make reproduce-xling\n")
    assert rec["config"]["model"] == str(tmp_path / "bert") and rec["config"]["epochs"] == 1

