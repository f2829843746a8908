"""Writing files so that nothing half-written is ever seen, and locks between processes.

The one place that does it for results, predictions, checkpoints, masked-LM stages and downloads:
- a file or folder is made under a temporary name, unpredictable and created exclusively in the
  target's folder (tempfile), then renamed into place: a crash leaves the old file or the new one;
- a lock is an flock on a file opened without truncating it and without following a symlink, and
  the OS releases it when the process dies.
"""
import contextlib
import fcntl
import os
import shutil
import tempfile

_UMASK = os.umask(0)  # read once (it can only be read by setting it), then put back
os.umask(_UMASK)


def _temp(path, make):
    folder, name = os.path.split(os.path.abspath(path))
    return make(dir=folder, prefix=f".{name}.", suffix=".tmp")


def replace(path, write, new=False):
    """write(tmp) fills a new empty file at a temporary name beside `path`, which then becomes
    `path` in one step. new=True: FileExistsError if `path` exists, even one that appeared while
    we wrote (a hard link never replaces). A failed write leaves no temporary behind."""
    fd, tmp = _temp(path, tempfile.mkstemp)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets the usual mode
        write(tmp)
        if new:
            os.link(tmp, path)  # the temporary name is removed below
        else:
            os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def replace_folder(path, fill):
    """fill(tmp) fills a new empty folder beside `path`, which then becomes `path`. A folder that
    exists already (another process finished the same one first) is kept and ours dropped:
    -> False; else True."""
    tmp = _temp(path, tempfile.mkdtemp)
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        fill(tmp)
        try:
            os.rename(tmp, path)
        except OSError:
            if not os.path.isdir(path) or os.path.islink(path):
                raise
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after the rename


def clear_temps(folder, name=""):
    """Remove the temporaries that replace and replace_folder left in `folder` (for `name`, or
    all) when their process was killed outright (SIGKILL, a power cut). Only for a folder whose
    writer holds a lock: another process's temporary is in use."""
    if not os.path.isdir(folder):
        return
    for entry in os.listdir(folder):
        if entry.startswith(f".{name}") and entry.endswith(".tmp") and entry.count(".") >= 3:
            path = os.path.join(folder, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def write_text(path, text, encoding="utf-8", new=False):
    """Text into `path` through replace. An unknown folder or a folder at `path` is an error that
    says so; a character the encoding lacks raises as it is; either way the old file stays."""
    def write(tmp):
        with open(tmp, "w", encoding=encoding, newline="") as f:
            f.write(text)
    try:
        replace(path, write, new)
    except FileExistsError:
        raise
    except OSError as e:
        raise OSError(f"{path}: cannot write ({e.strerror or e}); pass a file path in an "
                      f"existing, writable folder") from e


def _open_lock(path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:  # never truncated, never through a symlink planted at its name
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        raise OSError(f"{path}: cannot open as a lock file ({e.strerror}); remove it if it is "
                      f"a link") from e


@contextlib.contextmanager
def locked(path):
    """An exclusive flock on `path` for the block, waiting for it."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_lock(path):
    """Yields True while this process holds the flock on `path`, False when another does."""
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
