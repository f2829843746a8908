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
    head = r"CPU, torch \S+, \d{4}-\d\d-\d\d; 3 updates x batch 16, [\d,]+ pieces"
    assert re.match(head, lines[0]), lines[0]
    for name in ("ours, static shapes", "ours, eager", "HF loop"):  # static: graphs, uncaptured
        line = next(x for x in lines if x.startswith(name))
        assert re.search(r"[\d.]+ s/epoch +[\d,]+ tok/s .* HF/this [\d.]+$", line), line
    assert any(re.match(r"ours, static shapes, batch 32 +[\d.]+ s/epoch", x) for x in lines)
    assert any(re.match(r"--workers 2: [\d.]+x the throughput of one run", x) for x in lines)
    assert any(re.search(r"projected from ours, static shapes, .*make reproduce-en [\d.]+ min, "
                         r"IOB1\+BIO grid [\d.]+ h", x) for x in lines)
    runs = [x for x in lines if x.startswith("whole run, batch")]
    assert [x.split(":")[0] for x in runs] == [
        f"whole run, batch {b}, {e} epochs, seed {s}" for b, e, s in
        [(16, 4, 1), (16, 3, 1), (32, 4, 1), (32, 3, 1), (16, 4, 2)]], runs
    for x in runs:  # each run's seconds, split into parts that nest as timed
        got = re.search(r": ([\d.]+) s = training ([\d.]+) \(graphs recorded included\) \+ "
                        r"loading and evaluating (-?[\d.]+) \+ saving the tagger ([\d.]+) \+ "
                        r"the rest (-?[\d.]+) \(writing predictions and the record\)$", x)
        assert got, x
        # "the rest" is what is left, so the parts add up by construction; what can go wrong is
        # their nesting: training within finetune.train (the record's train_time_s within its
        # time_s), that and the saving within the run. Each part is then >= 0, but for the
        # record's rounding to 0.1 s and the line's own (0.15 s in all).
        assert min(map(float, got.groups()[1:])) > -0.15, x
    assert re.match(r"process start [\d.]+ s; saving a tagger [\d.]+ s a run \(training on the "
                    r"first 48 sentences\)$", lines[-3]), lines[-3]
    assert re.match(r"projected from whole runs in one process: make reproduce-en [\d.]+ min "
                    r"\([\d.]+ with --save false\), IOB1\+BIO grid [\d.]+ h \([\d.]+ with "
                    r"--save false\)$", lines[-2]), lines[-2]
    assert re.match(r"the grid on n GPUs, one --shard i/n each \(its longest shard\): 2: [\d.]+ h "
                    r"\([\d.]+x\), 4: [\d.]+ h \([\d.]+x\), 8: [\d.]+ h \([\d.]+x\)$",
                    lines[-1]), lines[-1]


def test_projections_follow_the_run_lists_and_their_shards(monkeypatch):
    """The projected wall times count the runs experiments.py really runs: reproduce-en is 10 runs
    at 16 x 4, the grid 30 of each (batch, epochs) pair; with --shard i/n the longest shard sets
    the time: never below an even share of the work, never above ceil(120 / n) of the longest
    runs. Seconds here are made up: distinct per setting."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    import argparse
    import bench_gpu
    a = argparse.Namespace(model="m", data=TINY)  # run keys read the data's files
    start, first, save = 3.0, 50.0, 1.0
    steady = {(16, 4): 30.0, (16, 3): 22.0, (32, 4): 17.0, (32, 3): 13.0}
    got = bench_gpu.projections(a, start, first, steady, save)
    once = start + first - steady[16, 4]  # what a process pays once, beside its runs
    assert got["reproduce-en", 1] == (once + 10 * 30.0, once + 10 * 30.0 - 10 * save)
    grid = once + 30 * sum(steady.values())
    assert got["grid", 1] == (grid, grid - 120 * save)
    for n in (2, 4, 8):
        wall = got["grid", n][0] - once
        assert (grid - once) / n <= wall <= -(-120 // n) * max(steady.values()), n
        assert got["reproduce-en", n][0] == once + -(-10 // n) * 30.0  # ceil(10 / n) runs


def test_bench_gpu_reports_a_failing_part_and_measures_the_rest(tmp_path, monkeypatch, capsys):
    """A capture that fails costs only its own row: the eager and HF rows and the projections (from
    the eager epoch) are still printed, the failure is named, and the exit status is 1."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    import bench_gpu
    import fastfit

    def broken(fn, keep, pool):
        raise RuntimeError("capture failed")
    monkeypatch.setattr(fastfit, "graphed", broken)
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py", "--device", "cpu", "--model", folder,
                                      "--data", TINY, "--batches", "3", "--workers", "1"])
    assert bench_gpu.main() == 1
    lines = capsys.readouterr().out.splitlines()
    assert "ours, static shapes: FAILED (RuntimeError: capture failed)" in lines
    assert not any(re.match(r"ours, static shapes +[\d.]+ s/epoch", x) for x in lines)
    for name in ("ours, eager", "HF loop"):
        assert any(re.match(name + r" +[\d.]+ s/epoch .* HF/this [\d.]+$", x) for x in lines)
    assert any("projected from ours, eager" in x for x in lines)
    assert lines[-1].startswith("FAILED: ours, static shapes (tracebacks above)")


def test_bench_gpu_profile_counts_each_kind_of_work(tmp_path, monkeypatch, capsys):
    """--parts profile on the CPU (ops, not kernels): the kinds add up to the busy time, and the
    optimizer is one fused AdamW call per parameter group per update (6: decay and no decay for
    the embeddings, the one layer and the head), as finetune.AdamW makes it."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    import bench_gpu
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16)
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py", "--device", "cpu", "--model", folder,
                                      "--data", TINY, "--batches", "3", "--workers", "1",
                                      "--parts", "profile", "--profile-steps", "2"])
    assert bench_gpu.main() == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, x in enumerate(lines) if x.startswith("profile, ours, static shapes"))
    busy = float(re.search(r", ([\d.]+) ms of it in ops", lines[head])[1])
    kinds = {}
    for x in lines[head + 1:]:
        if x.startswith("  the 12 longest"):
            break
        name, ms, n = re.fullmatch(r"  (.+?) +([\d.]+) ms +[\d.]+%  +([\d.]+) ops an update",
                                   x).groups()
        kinds[name] = (float(ms), float(n))
    assert sum(ms for ms, _ in kinds.values()) == pytest.approx(busy, abs=0.01 * len(kinds))
    assert kinds["optimizer (AdamW)"][1] == 6.0
    assert {"matmuls", "layer norm", "dropout", "embedding", "clip: the norm"} <= set(kinds)


KERNELS = [  # names of the forms torch's (and cuBLAS's) CUDA kernels take, from torch's
    # sources (FusedAdamMathFunctor, LpNormFunctor, ...), and the kind each is; the first GPU
    # profile shows the real ones
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous "
     "namespace)::TensorListMetadata<4>, at::native::(anonymous namespace)::FusedAdamMathFunctor"
     "<float, 4, (at::native::ADAM_MODE)1, false>, double*, double, double, double, double, "
     "double, bool, float*, float*>", "optimizer (AdamW)"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous "
     "namespace)::TensorListMetadata<1>, at::native::(anonymous namespace)::LpNormFunctor<float, "
     "(at::native::NormType)1, float, float>, float*, int>", "clip: the norm"),
    ("void at::native::lpnorm_cleanup<float, (at::native::NormType)1, float, float>",
     "clip: the norm"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous "
     "namespace)::TensorListMetadata<1>, at::native::(anonymous namespace)::BinaryOpScalarTensor"
     "Functor<float, 1, 1, 0>, std::multiplies<float>, float*, float>",
     "other foreach (clip's scale)"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_"
     "segment_k_off_kernel__5x_cublas", "matmuls"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>(int, "
     "float, float const*, float const*, float const*, float*, float*, float*)", "layer norm"),
    ("void at::native::(anonymous namespace)::fused_dropout_kernel_vec<float, float, unsigned "
     "int, 1, 4, bool>", "dropout"),
    ("void at::native::(anonymous namespace)::indexSelectLargeIndex<float, long, unsigned int, 2, "
     "2, -2, true>", "embedding"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, "
     "at::detail::Array<char*, 1> >", "zeros and fills"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, "
     "false, cutlass::bfloat16_t> >", "attention"),
    ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::"
     "TensorIteratorBase&)::{lambda()#3}::operator()() const>", "copies and casts"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl(at::"
     "TensorIteratorBase&, at::native::GeluType)>", "other elementwise")]


@pytest.mark.parametrize("name, kind", KERNELS, ids=[k for _, k in KERNELS])
def test_profile_sorts_cuda_kernels_by_kind(monkeypatch, name, kind):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    import bench_gpu
    assert bench_gpu.kind_of(name) == kind


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: it would really measure")
def test_bench_gpu_without_cuda_says_so():
    """The default device is CUDA: on a machine without one it measures nothing and exits 0."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_gpu.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "no CUDA GPU on this machine" in out.stdout, out.stderr


def test_compare_hf_finetune_smoke(minilm_dir):
    """bench/compare_hf_finetune.py, the real-weights check of the fast path against the eager one
    (and both against HF), on 20 sentences of en_tiny, 1 epoch, seeds 1 and 2: one line per run, the
    means, and the verdict. On the CPU both paths are the eager loop, so their F1 are equal."""
    cmd = [sys.executable, os.path.join(ROOT, "bench", "compare_hf_finetune.py"), "--data", TINY,
           "--sentences", "20", "--epochs", "1", "--seeds", "1,2", "--graphs", "both"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    runs = [x for x in lines if re.match(r"ours \(graphs (True|False)\): dev F1 [\d.]+  train", x)]
    assert len(runs) == 4 and sum(x.startswith("HF:   dev F1") for x in lines) == 2, lines
    assert re.match(r"mean dev F1: graphs False [\d.]+, graphs True [\d.]+, hf [\d.]+$", lines[-2])
    gap = re.match(r"fast path vs eager: \|mean dev F1 difference\| ([\d.]+) ", lines[-1])
    assert gap, lines[-1]
    if not torch.cuda.is_available():
        assert float(gap[1]) == 0 and lines[-1].endswith("(no CUDA here: both ran eagerly)")


def test_bench_adamw_smoke(minilm_dir):
    """bench/bench_adamw.py on the packaged MiniLM, one step each: every optimizer's line, and with
    --used-rows ours over the word rows in use only (22.6M weights less 29,522 x 384: 11M)."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_adamw.py"),
                          "--steps", "1", "--used-rows", "1000"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert re.match(r"device cpu, torch \S+, 22\.6M parameters in \d+ groups", lines[0]), lines[0]
    names = [re.split(r"  +", x)[0] for x in lines[1:]]
    assert names == ["ours (fused, BertAdam)", "ours, per-tensor reference",
                     "torch.optim.AdamW (default)", "torch.optim.AdamW (fused)",
                     "ours, 1000 word rows (11M)"], names
