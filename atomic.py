"""Writing files so that nothing half-written is ever seen, and locks between processes.

The one place that does it for results, predictions, checkpoints, masked-LM stages and downloads:
- a file or folder is made under a temporary name, unpredictable and created exclusively in the
  target's folder (tempfile), then renamed into place: a crash leaves the old file or the new one.
  A file is written inside a private temporary folder, so that a writer's own temporaries (the
  safetensors library writes through one beside its target) land there too and one name pattern,
  `.NAME.HOST-PID.*.tmp`, covers whatever a killed writer left; HOST-PID says whose it is, so
  that only a dead writer's are ever cleared, even on a file system shared between machines;
- a lock is an flock on a file opened without truncating it and without following a symlink, and
  the OS releases it when the process dies.
"""
import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import tempfile

_UMASK = os.umask(0)  # read once (it can only be read by setting it), then put back
os.umask(_UMASK)
HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]  # this machine, in a name


def _temp(path):
    folder, name = os.path.split(os.path.abspath(path))
    return tempfile.mkdtemp(dir=folder, prefix=f".{name}.{HOST}-{os.getpid()}.", suffix=".tmp")


def replace(path, write, new=False):
    """write(tmp) fills a new empty file at a temporary path (in a private folder beside `path`),
    which then becomes `path` in one step. new=True: FileExistsError if `path` exists, even one
    that appeared while we wrote (a hard link never replaces). A failed write leaves no temporary
    behind, nor do the writer's own temporaries."""
    folder = _temp(path)
    tmp = os.path.join(folder, os.path.basename(path))
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies
        write(tmp)
        if new:
            os.link(tmp, path)  # the temporary folder is removed below
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def replace_folder(path, fill):
    """fill(tmp) fills a new empty folder beside `path`, which then becomes `path`. A folder that
    exists already (another process finished the same one first) is kept and ours dropped:
    -> False; else True."""
    tmp = _temp(path)
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


def made_once(folder, fill, files):
    """`folder`, filled by fill(tmp) once and reused: under a lock beside it, so that one process
    makes it while the others wait for it; a killed maker's temporary is cleared, and a folder
    missing one of `files` (a crash, a hand) is made anew. -> folder."""
    with locked(folder + ".lock"):
        clear_temps(os.path.dirname(folder), os.path.basename(folder))
        if not all(os.path.isfile(os.path.join(folder, n)) for n in files):
            shutil.rmtree(folder, ignore_errors=True)
            replace_folder(folder, fill)
    return folder


def clear_temps(folder, name=""):
    """Remove the temporaries that replace and replace_folder left in `folder` (for `name`, or
    all) when their process was killed outright (SIGKILL, a power cut): those whose writer (the
    HOST-PID in the name) no longer runs on this machine. Another machine's are left alone: its
    process cannot be seen from here, and a lock may not hold between machines."""
    if not os.path.isdir(folder):
        return
    for entry in os.listdir(folder):
        if entry.startswith(f".{name}") and entry.endswith(".tmp") and entry.count(".") >= 3:
            if _alive(entry.split(".")[-3]):
                continue
            path = os.path.join(folder, entry)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
            except FileNotFoundError:  # cleared by another process meanwhile
                pass


def _alive(writer):
    """Whether the writer "HOST-PID" of a temporary may still run: a process of this machine
    that exists, or any of another machine. A name of another form (an old temporary) is dead."""
    host, _, pid = writer.partition("-")
    if not pid.isdigit() or len(host) != len(HOST):
        return False
    if host != HOST:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
def try_lock(path, remove=False):
    """Yields True while this process holds the flock on `path`, False when another does.
    remove=True: the holder deletes the file as it lets go, so nothing is left behind (a claim);
    whoever then finds its lock on a deleted file takes the path's new one instead."""
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:  # still the file at `path`? Its holder may have deleted it while we opened it
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield True
    finally:
        if remove:
            os.remove(path)  # while held: no one else holds this file now
        os.close(fd)


def held(path):
    """Whether a process holds the flock on `path`, found without taking it: taking it, even for
    a moment, would turn away a worker that claims it then. Linux lists every lock in /proc/locks;
    elsewhere the lock is tried (non-blocking) and let go at once."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        with try_lock(path) as mine:
            return not mine
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 5399 fe:00:2146675 0 EOF" (a waiter's
        f = line.split()  # line reads "1: -> FLOCK ...")
        if len(f) > 5 and f[1] == "FLOCK":
            major, minor, ino = f[5].split(":")
            if (int(major, 16), int(minor, 16), int(ino)) == want:
                return True
    return False
