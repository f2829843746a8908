"""atomic.py: a file or a folder is the old one or the new one, never half of either; a failed
fill leaves its target as it was and no temporary; what a killed maker of NAME left
(`.NAME.XXXXXXXX.tmp`) is cleared by the next making of NAME, and only that."""
import os
import time
import stat
from pathlib import Path

import pytest

import atomic


def test_write_text_leaves_the_old_file_on_failure(tmp_path):
    """write_text writes the text whole; a failed write (a character latin-1 lacks, a folder at
    the path) raises and leaves the folder as it was: old content kept, no temporary."""
    p = tmp_path / "out.txt"
    atomic.write_text(p, "Köln\n", encoding="latin-1")
    assert p.read_bytes() == b"K\xf6ln\n"
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(p, "Łódź\n", encoding="latin-1")
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        atomic.write_text(tmp_path / "d", "x")
    assert sorted(os.listdir(tmp_path)) == ["d", "out.txt"] and p.read_bytes() == b"K\xf6ln\n"
    assert os.listdir(tmp_path / "d") == []


def test_write_is_the_old_or_the_new(tmp_path):
    """write(path, fill): a fill that writes half and raises leaves the old file and no
    temporary, and no file where there was none; a fill that completes replaces the old one, with
    the usual mode (umask applied), not a private temporary's 0600."""
    def broken(tmp):
        Path(tmp).write_text("half")
        raise OSError("disk full")
    f = tmp_path / "f.txt"
    with pytest.raises(OSError, match="disk full"):
        atomic.write(f, broken)
    assert os.listdir(tmp_path) == []
    atomic.write_text(f, "old")
    with pytest.raises(OSError, match="disk full"):
        atomic.write(f, broken)
    assert f.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]
    atomic.write(f, lambda tmp: Path(tmp).write_text("new"))
    assert f.read_text() == "new" and os.listdir(tmp_path) == ["f.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o666 & ~umask


def test_make_folder_is_the_old_or_the_new(tmp_path):
    """make_folder(path, fill) -> path, filled whole; a second making replaces the first (an
    incomplete folder, a file deleted by hand, is replaced whole); a fill that raises half-way
    leaves the old folder as it was and no temporary."""
    def folder(text):
        return lambda tmp: (Path(tmp) / "a.txt").write_text(text)
    d = tmp_path / "stage"
    assert atomic.make_folder(d, folder("first")) == d
    assert os.listdir(d) == ["a.txt"] and (d / "a.txt").read_text() == "first"
    (d / "a.txt").unlink()  # incomplete now
    (d / "stray").write_text("x")
    atomic.make_folder(d, folder("second"))
    assert os.listdir(d) == ["a.txt"] and (d / "a.txt").read_text() == "second"

    def broken(tmp):
        (Path(tmp) / "a.txt").write_text("half")
        raise ValueError("a check failed")
    with pytest.raises(ValueError, match="a check failed"):
        atomic.make_folder(d, broken)
    assert (d / "a.txt").read_text() == "second" and os.listdir(tmp_path) == ["stage"]
    with pytest.raises(ValueError):
        atomic.make_folder(tmp_path / "new", broken)
    assert os.listdir(tmp_path) == ["stage"]


def test_a_killed_makers_leftovers_go_with_the_next_making_of_that_name(tmp_path):
    """What a killed writer of result.json left (a file under its temporary name) and a killed
    maker of lm-abc (a folder), untouched for over atomic.STALE_S, go when result.json / lm-abc are
    next made; a fresh temporary (a writer still at work), the temporaries of other names,
    dotfiles, and names that only look alike stay."""
    keep = [".model.safetensors.k3j9x1aa.tmp", ".hidden", "notes.tmp", ".result.json.bak",
            "model.safetensors"]
    for name in keep + [".result.json.a1b2c3d4.tmp"]:
        (tmp_path / name).write_text("x")
    (tmp_path / ".lm-abc.q9w8e7r6.tmp").mkdir()
    (tmp_path / ".lm-abc.q9w8e7r6.tmp" / "model.safetensors").write_text("half")
    old = time.time() - atomic.STALE_S - 10  # untouched for over an hour: a killed maker's
    for name in os.listdir(tmp_path):
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".result.json.fresh123.tmp").write_text("x")  # another writer's, still writing
    keep.append(".result.json.fresh123.tmp")
    atomic.write_text(tmp_path / "result.json", "{}")
    assert ".result.json.a1b2c3d4.tmp" not in os.listdir(tmp_path)
    assert ".lm-abc.q9w8e7r6.tmp" in os.listdir(tmp_path)
    atomic.make_folder(tmp_path / "lm-abc", lambda tmp: None)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["lm-abc", "result.json"])
