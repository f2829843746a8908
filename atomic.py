"""Nothing half-written is ever seen: a file or folder is made under a temporary name beside its
target, `.NAME.XXXXXXXX.tmp`, then renamed into place in one step; a crash leaves the old or the
new one, and at most a temporary that a later making of NAME clears. Every output goes through here.
"""
import glob
import os
import shutil
import time
import uuid


STALE_S = 3600  # a temporary untouched this long is a killed maker's, not one still writing


def _temp(path):
    """A fresh temporary name beside `path`, after clearing those a killed maker of it left (a
    run's temporaries go with its folder; downloads at once from several shards keep theirs)."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)  # the target's folder, made here for every writer
    for old in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):
        if time.time() - os.path.getmtime(old) > STALE_S:
            shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")


def write(path, fill):
    """fill(tmp) writes a new file at a temporary path, which then becomes `path`."""
    tmp = _temp(path)
    try:
        fill(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):  # a failed fill leaves nothing behind
            os.remove(tmp)


def write_text(path, text, encoding="utf-8"):
    def fill(tmp):
        with open(tmp, "w", encoding=encoding, newline="") as f:
            f.write(text)
    write(path, fill)


def make_folder(path, fill):
    """fill(tmp) fills a new folder, which then becomes `path` (one that exists is replaced)."""
    tmp = _temp(path)
    os.mkdir(tmp)
    try:
        fill(tmp)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after the rename
    return path
