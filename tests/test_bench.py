"""bench/bench_gpu.py runs end to end on the CPU (`--device cpu`, a tiny random BERT, 3 updates),
so that a GPU session spends its minutes measuring, not debugging the script: every line it
promises (the three loops, their ratios, a --workers figure, the projections) is printed."""
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, bert_folder


def test_bench_gpu_smoke_on_cpu(tmp_path):
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    cmd = [sys.executable, os.path.join(ROOT, "bench", "bench_gpu.py"), "--device", "cpu",
           "--model", folder, "--data", TINY, "--batches", "3", "--workers", "1,2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two worker processes share the 2 cores
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert re.match(r"CPU, torch \S+, \d{4}-\d\d-\d\d; 3 updates x batch 16, [\d,]+ pieces", lines[0])
    for name in ("ours, CUDA graphs", "ours, eager", "HF loop"):
        line = next(x for x in lines if x.startswith(name))
        assert re.search(r"[\d.]+ s/epoch +[\d,]+ tok/s .* HF/this [\d.]+$", line), line
    assert any(re.match(r"--workers 2: [\d.]+x the throughput of one run", x) for x in lines)
    assert re.search(r"make reproduce-en [\d.]+ min, IOB1\+BIO grid [\d.]+ h", lines[-1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: it would really measure")
def test_bench_gpu_without_cuda_says_so():
    """The default device is CUDA: on a machine without one it measures nothing and exits 0."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_gpu.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "no CUDA GPU on this machine" in out.stdout, out.stderr
