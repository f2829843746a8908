"""The Makefile's targets hand python exactly the words they are given. PY is replaced by a script
that prints its argv, so each case pins the command line a target runs, and that a value with `$`,
quotes, backticks or spaces arrives as one unchanged argument (make used to drop `$5` and the
quotes, the shell would run a backtick, and OUT='runs/my out' split in two)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What an outer `make test ARGS=...` passes down, and the Makefile's own variables: a case sees
# only the values it sets.
INHERITED = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PY", "ARGS", "MODEL", "DATA",
             "DE_DATA", "GERMEVAL_DATA", "CONLL2002_DATA", "XLING", "ZERO_SHOT", "TEXT", "GRID",
             "OUT")
MBERT = "bert-base-multilingual-cased"


def argv_of(tmp_path, target, env=None, **values):
    """The argv that `make TARGET NAME=VALUE...` hands to python (PY), its first word dropped
    (a list of them where the target runs python more than once). -o .venv/ok: the venv counts
    as made, so no target installs anything."""
    printargs = tmp_path / "printargs"
    printargs.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    printargs.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k not in INHERITED}
    cmd = ["make", "-s", "-C", ROOT, "-o", ".venv/ok", target, f"PY={printargs}"]
    cmd += [f"{k}={v}" for k, v in values.items()]
    r = subprocess.run(cmd, env={**clean, **(env or {})}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    runs = [json.loads(line) for line in r.stdout.splitlines()]
    return runs[0] if len(runs) == 1 else runs


TEXT = """Apple paid $5 million to "Acme" for `id`'s $(OUT) $$HOME , ok ."""


@pytest.mark.parametrize("target, values, argv", [
    ("explain", dict(TEXT=TEXT),
     ["experiments.py", "explain", "--model", MBERT, TEXT]),
    ("explain", dict(TEXT="Angela Merkel visited Paris .", MODEL="runs/en/my run",
                     ARGS="--method --delta 2.6"),
     ["experiments.py", "explain", "--model", "runs/en/my run", "--method", "--delta", "2.6",
      "Angela Merkel visited Paris ."]),
    ("demo", dict(OUT="runs/my out"),
     ["experiments.py", "demo", "--out", "runs/my out/demo"]),
    ("demo", dict(DATA="data/en $5", OUT="o", ARGS="--lr=3e-5 --note 'two words'"),
     ["experiments.py", "demo", "--data", "data/en $5", "--out", "o/demo", "--lr=3e-5",
      "--note", "two words"]),
    ("reproduce-en", {},
     ["experiments.py", "reproduce", "--lang", "en", "--model", MBERT, "--out", "runs/en"]),
    ("reproduce-en", dict(DATA="my data", MODEL="my model", OUT="my runs", GRID="1",
                          ZERO_SHOT="es,de=de data"),
     ["experiments.py", "reproduce", "--lang", "en", "--data", "my data", "--model", "my model",
      "--out", "my runs/en", "--grid", "true", "--zero_shot", "es,de=de data"]),
    ("reproduce-de", dict(DE_DATA="conll 2003/de"),
     ["experiments.py", "reproduce", "--lang", "de", "--data", "conll 2003/de", "--model", MBERT,
      "--out", "runs/de"]),
    ("reproduce-de", {},  # no folder: an empty --data, which experiments.py explains
     ["experiments.py", "reproduce", "--lang", "de", "--data", "", "--model", MBERT,
      "--out", "runs/de"]),
    ("reproduce-germeval", dict(GERMEVAL_DATA="ge data", OUT="a'b", GRID="1"),
     ["experiments.py", "reproduce", "--lang", "germeval", "--data", "ge data", "--model", MBERT,
      "--out", "a'b/germeval", "--grid", "true"]),
])
def test_a_target_runs_python_with_these_words(tmp_path, target, values, argv):
    assert argv_of(tmp_path, target, **values) == argv


def test_a_value_from_the_environment_arrives_unchanged(tmp_path):
    """TEXT='...' make explain: the same words as make explain TEXT='...'."""
    assert argv_of(tmp_path, "explain", env={"TEXT": TEXT, "OUT": "x y"})[-1] == TEXT


def test_no_value_is_run_as_a_command(tmp_path):
    """Backticks and $(...) in TEXT reach python as text; the shell runs neither."""
    ran = tmp_path / "ran"
    text = f"`touch {ran}` $(touch {ran}) ."
    assert argv_of(tmp_path, "explain", TEXT=text)[-1] == text
    assert not ran.exists()


def test_reproduce_xling_trains_each_language_scored_on_every_other(tmp_path):
    """make reproduce-xling: English, Spanish and Dutch (German with DE_DATA) into one OUT/xling,
    each with the same --zero_shot list naming every language, each with its folder where one is
    given (CONLL2002_DATA serves Spanish and Dutch; without it they are downloaded); XLING=...
    names the scored languages instead."""
    every = ["--model", MBERT, "--out", "runs/xling", "--zero_shot", "en,es,nl,germeval"]
    assert argv_of(tmp_path, "reproduce-xling") == [
        ["experiments.py", "reproduce", "--lang", lang, *every] for lang in ("en", "es", "nl")]
    runs = argv_of(tmp_path, "reproduce-xling", DATA="en $5", CONLL2002_DATA="c 2002",
                   DE_DATA="de data", GERMEVAL_DATA="ge", ARGS="--seeds 1")
    spec = "en=en $5,es=c 2002,nl=c 2002,germeval=ge,de=de data"
    assert runs == [["experiments.py", "reproduce", "--lang", lang, "--data", data, "--model",
                     MBERT, "--out", "runs/xling", "--zero_shot", spec, "--seeds", "1"]
                    for lang, data in (("en", "en $5"), ("es", "c 2002"), ("nl", "c 2002"),
                                       ("de", "de data"))]
    assert {tuple(r[-2:]) for r in argv_of(tmp_path, "reproduce-xling", XLING="es,nl=a b")} == {
        ("--zero_shot", "es,nl=a b")}
