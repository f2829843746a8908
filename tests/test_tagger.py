"""tagger.py: `predict` as a user runs it (the command as a process: one "error: ..." line and exit
1 for a mistake, never a traceback), the message for a word too long for the model's windows, and
the checks of a model folder's config.json. On the CPU, with conftest's small saved run."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import tagger
from conftest import ROOT, TINY, cpu_only

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def run_dir(trained):
    """A small saved run's folder (conftest's trained): BIO, 128 positions, max_len 128."""
    _, exp, rec = trained
    return os.path.join(exp.out, f"run-{rec['key']}")


def predict(*args, stdin=""):
    """`python experiments.py predict ARGS` through bash, stdin redirected as `stdin` says ("<&-"
    closes it) -> (exit status, stdout, stderr)."""
    argv = " ".join(f"'{a}'" for a in [sys.executable, "experiments.py", "predict", *args])
    p = subprocess.run(["bash", "-c", f"exec {argv} {stdin}"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_a_word_over_the_models_windows_says_what_to_do(run_dir, tmp_path):
    """200 CJK characters typed without spaces are one word of 200 pieces, over the 126 a window
    of max_len 128 holds: one line names the text, the word's pieces, and what the user can do
    (split it; max_len is the model's, mbert_ner.max_len in its config.json), not "raise max_len"
    (predict has no such flag). Split by spaces, the same text is tagged, a character a word."""
    rc, out, err = predict(run_dir, "中" * 200, "--text")
    assert (rc, out) == (1, "") and err.count("\n") == 1, err
    assert err.startswith("error: the text, line 1: word '中中") and "has 200 pieces" in err
    assert "max_len - 2 = 126; split the word with spaces" in err
    assert f"mbert_ner.max_len in {run_dir}/config.json, at most 128)" in err
    assert "raise max_len" not in err and "Traceback" not in err
    path = tmp_path / "cjk.txt"
    path.write_text("中" * 200 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 1: word '中中")):
        tagger.predict(run_dir, str(path), text=True)
    with cpu_only():
        tagged = tagger.predict(run_dir, " ".join("中" * 200), text=True)
    assert [x.split(" ")[0] for x in tagged.split("\n") if x] == ["中"] * 200


def test_predict_an_empty_sentence_closed_stdin_and_utf16_stdin(run_dir, tmp_path):
    """`predict RUN "" --text`: the sentence is empty, said in one line (exit 1). `predict RUN -
    --text <&-`: a closed stdin holds no lines, so nothing is printed (exit 0). UTF-16 on stdin
    without --encoding: one line naming stdin and the flag to pass; with it, the text is tagged."""
    rc, out, err = predict(run_dir, "", "--text")
    assert (rc, out) == (1, "")
    assert err == "error: the sentence to tag is empty: pass a sentence, a file, or - (stdin)\n"
    assert predict(run_dir, "-", "--text", stdin="<&-") == (0, "", "")
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("EU rejects German call .\n".encode("utf-16"))  # with its BOM
    rc, out, err = predict(run_dir, "-", "--text", stdin=f"< '{utf16}'")
    assert (rc, out) == (1, "")
    assert err == ("error: stdin: UTF-16 text (its byte-order mark): pass --encoding utf-16, or "
                   "save it as UTF-8\n")
    rc, out, err = predict(run_dir, "-", "--text", "--encoding", "utf-16", stdin=f"< '{utf16}'")
    assert rc == 0 and [x.split(" ")[0] for x in out.split("\n") if x] == [
        "EU", "rejects", "German", "call", "."], err


def damaged(run_dir, tmp_path, edit):
    """A copy of the run folder with config.json's text edited."""
    folder = str(tmp_path / "run")
    shutil.copytree(run_dir, folder)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(edit(text))
    return folder


def joined(**keys):
    """An edit of config.json's text that sets `keys`, each a function of the config."""
    def edit(text):
        config = json.loads(text)
        return json.dumps(config | {k: f(config) for k, f in keys.items()})
    return edit


@pytest.mark.parametrize("label, why", [
    ("B-PER X", "U+0020"), ("B-PER\t", "U+0009"), ("B-PER\xa0", "U+00A0"),
    ("B-PER\n", "U+000A"), ("B-", "tag 'B-' is not O, B-TYPE or I-TYPE")])
def test_a_models_odd_label_name_is_refused_naming_it(run_dir, tmp_path, label, why):
    """A label is O, or B-/I- (S-/E- mapped) and a printable type with no whitespace, as a CoNLL
    tag is: "B-PER X" would write 4-column lines, "B-PER\\n" break a sentence after each PER word,
    "B-PER\\xa0" score as a type of its own, "B-" has no type; each is refused with the folder,
    the id2label key and the label, before anything is written."""
    folder = damaged(run_dir, tmp_path, joined(id2label=lambda c: c["id2label"] | {"3": label}))
    out = tmp_path / "p.txt"
    with pytest.raises(ValueError, match=re.escape('config.json:id2label["3"]') + ".*" +
                       re.escape(why)):
        tagger.predict(folder, os.path.join(TINY, "test.txt"), output=str(out))
    assert not out.exists()


@pytest.mark.parametrize("edit, match", [
    (lambda t: t[:len(t) // 2], r"config.json: not valid JSON"),
    (lambda t: "[]", r"config.json: expected a JSON object"),
    (joined(id2label=lambda c: {str(i): i for i in range(len(c["id2label"]))}),
     r"config.json needs id2label naming each of the 9 classifier outputs by its tag"),
    (joined(id2label=lambda c: {str(int(k) + 1): v for k, v in c["id2label"].items()}),
     r"config.json needs id2label naming each of the 9 "),
    (joined(mbert_ner=lambda c: dict(max_len=4096)),
     r"config.json: mbert_ner.max_len is 4096, but the model has 128 positions: set max_len to "
     r"128 or less there")])
def test_a_damaged_run_folder_is_named_not_a_traceback(run_dir, tmp_path, edit, match):
    """A run folder whose config.json is cut off or not an object, whose id2label names labels by
    number or counts them from 1, or whose mbert_ner.max_len (which predict's message for a word too
    long points to) is over the model's positions: an error naming the folder's config.json and
    what to set."""
    folder = damaged(run_dir, tmp_path, edit)
    with pytest.raises(ValueError, match=match):
        tagger.load_tagger(folder, torch.device("cpu"))
