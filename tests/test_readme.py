"""The README's commands, run as a reader types them: every `python ...` command in its fenced
blocks and inline code, in a shell, against a small saved run standing in for the one a GPU
would train (runs/en/run-KEY, RUN), a CoNLL test file standing in for eng.testb, and the
predictions file the command before wrote. Those that need the Hub, a GPU or a download are
listed by hand below, so a new README command is either run here or named there."""
import os
import re
import shutil
import subprocess
import sys

from conftest import ROOT, TINY

NEEDS_NETWORK = {  # a Hub model, mBERT or CoNLL-2003 fetched: not run here
    "python experiments.py predict dslim/bert-base-NER eng.testb",
    "python experiments.py reproduce --lang en --shard $SLURM_ARRAY_TASK_ID/4 --out runs/en",
}


def readme_commands():
    """Every `python ...` command in README.md: fenced lines (comments after " #" cut) and inline
    code spans (a span may run over a line break)."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    fenced = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in fenced for line in block.split("\n")]
    inline = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", inline)]
    cmds = [c for c in lines + spans if re.match(r"(echo .*\| )?python ", c)]
    return list(dict.fromkeys(cmds))  # in order, once each


def test_the_readmes_commands_run_as_typed(trained, tmp_path):
    """Each offline command exits 0 in a fresh folder, with the venv's python as `python`; each
    other command is one the list above names."""
    cfg, exp, rec = trained
    run = os.path.join(exp.out, f"run-{rec['key']}")
    shutil.copy(os.path.join(TINY, "test.txt"), tmp_path / "eng.testb")
    cmds = readme_commands()
    assert len(cmds) >= 7, cmds
    unknown = [c for c in cmds if c in NEEDS_NETWORK]
    assert sorted(unknown) == sorted(NEEDS_NETWORK), "a network command left the README"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ran = []
    for cmd in (c for c in cmds if c not in NEEDS_NETWORK):
        line = cmd.replace("runs/en/run-KEY", run).replace(" RUN ", f" {run} ")
        line = line.replace("--out runs/en", f"--out {exp.out}")
        line = line.replace("predictions.txt", "eng.testb.pred.txt")
        for script in ("experiments.py", "conlleval.py"):
            line = line.replace(f"python {script}", f"python {os.path.join(ROOT, script)}")
        r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, (cmd, r.stderr[-2000:])
        ran.append(cmd)
    assert any("predict" in c and "--text" in c for c in ran)
    assert any(c.startswith("python conlleval.py") for c in ran)
    assert any("explain --method" in c for c in ran)
