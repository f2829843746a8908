"""atomic.py: files and folders appear whole or not at all, temporaries are private and never
left behind, and locks neither truncate nor follow a link planted at their name."""
import os
import stat
from pathlib import Path

import pytest

import atomic


def test_write_text_leaves_nothing_on_failure(tmp_path):
    """write_text writes text atomically; a failed write (a character latin-1 lacks, a folder
    at the path) raises and leaves the folder as it was: no temp file, old content kept."""
    p = tmp_path / "out.txt"
    atomic.write_text(p, "Köln\n", encoding="latin-1")
    assert p.read_bytes() == b"K\xf6ln\n"
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(p, "Łódź\n", encoding="latin-1")
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError, match=r"d: cannot write"):
        atomic.write_text(tmp_path / "d", "x")
    assert sorted(os.listdir(tmp_path)) == ["d", "out.txt"] and p.read_bytes() == b"K\xf6ln\n"


def test_files_and_folders_appear_whole(tmp_path):
    """A folder appears whole under its name (-> True); a second one for the same name, as from a
    process that finished later, is dropped and the first kept (-> False); a write that fails
    half-way leaves the old file and no temp; nothing but the targets is ever left in the folder."""
    def folder(text):
        return lambda tmp: (Path(tmp) / "a.txt").write_text(text)
    d = tmp_path / "stage"
    assert atomic.replace_folder(d, folder("first")) is True
    assert atomic.replace_folder(d, folder("second")) is False
    assert (d / "a.txt").read_text() == "first"

    def broken(tmp):
        Path(tmp).write_text("half")
        raise OSError("disk full")
    atomic.write_text(tmp_path / "f.txt", "old")
    with pytest.raises(OSError, match="disk full"):
        atomic.replace(tmp_path / "f.txt", broken)
    assert (tmp_path / "f.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["f.txt", "stage"]


def test_new_never_replaces(tmp_path):
    """new=True writes only a file that does not exist, and says so otherwise."""
    p = tmp_path / "p.txt"
    atomic.write_text(p, "first", new=True)
    with pytest.raises(FileExistsError):
        atomic.write_text(p, "second", new=True)
    assert p.read_text() == "first" and os.listdir(tmp_path) == ["p.txt"]


def test_temporaries_are_unpredictable_and_links_there_are_left_alone(tmp_path):
    """Links planted at every name the old code would have used (.NAME.tmpPID for the next pids)
    and at the target's temp prefix change nothing they point to; the written file has the usual
    mode (umask applied), not mkstemp's 0600."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "o.txt"
    for pid in range(os.getpid(), os.getpid() + 50):
        os.symlink(victim, tmp_path / f".o.txt.tmp{pid}")
        os.symlink(victim, tmp_path / f"o.txt.tmp{pid}")
    atomic.write_text(out, "ours")
    assert out.read_text() == "ours" and victim.read_text() == "precious"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask


def test_a_lock_neither_truncates_nor_follows_a_link(tmp_path):
    """A symlink at a lock's name is refused with the path named; the file it points to keeps its
    bytes. A real lock file keeps what it held (open without truncating)."""
    victim = tmp_path / "results.jsonl"
    victim.write_text('{"key": "a"}\n')
    link = tmp_path / "results.jsonl.lock"
    os.symlink(victim, link)
    with pytest.raises(OSError, match="results.jsonl.lock: cannot open as a lock file"):
        with atomic.locked(str(link)):
            pass
    with pytest.raises(OSError, match="cannot open as a lock file"):
        with atomic.try_lock(str(link)):
            pass
    assert victim.read_text() == '{"key": "a"}\n'
    lock = tmp_path / "claims" / "k.lock"
    with atomic.try_lock(str(lock)) as mine:
        assert mine
        with atomic.try_lock(str(lock)) as again:  # flock: another open file description
            assert not again


def test_clear_temps_takes_only_temporaries(tmp_path):
    """What a killed writer left (a file and a folder under replace's temporary names) goes; the
    files, dotfiles and other names stay; a name limits it to that target's temporaries."""
    for name in (".model.safetensors.k3j_x1.tmp", ".results.jsonl.a1b2c3.tmp", "model.safetensors",
                 ".hidden", "notes.tmp"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".lm-abc.q9w8e7.tmp").mkdir()
    atomic.clear_temps(str(tmp_path), "results.jsonl")
    assert ".results.jsonl.a1b2c3.tmp" not in os.listdir(tmp_path)
    assert ".model.safetensors.k3j_x1.tmp" in os.listdir(tmp_path)
    atomic.clear_temps(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".hidden", "model.safetensors", "notes.tmp"]


def test_held_reads_a_lock_without_taking_it(tmp_path, monkeypatch):
    """held() sees a lock held by this process and by a child, and none once they let go, and it
    never calls flock itself: a worker claiming the lock at that moment must get it."""
    import fcntl
    import subprocess
    import sys
    path = str(tmp_path / "KEY.lock")
    assert not atomic.held(path)  # no such file
    calls = []
    real = fcntl.flock
    with atomic.try_lock(path) as mine:
        assert mine
        monkeypatch.setattr(fcntl, "flock", lambda *a: calls.append(a) or real(*a))
        assert atomic.held(path)
        monkeypatch.undo()
    assert not atomic.held(path)
    child = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                              f"fd = os.open({path!r}, os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
                              "print('held', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "held\n"
        monkeypatch.setattr(fcntl, "flock", lambda *a: calls.append(a) or real(*a))
        assert atomic.held(path)
    finally:
        child.kill()
        child.wait()
    assert calls == [] and not atomic.held(path)
