"""The project's files on disk, written so that a crash never leaves half of one: atomic
writes (temp file, fsync, rename; the user's umask), the run folder's lock, checkpoints
read with ``weights_only`` and named in every error, and the flat config comparisons a
resume uses. The trainer (:mod:`gmdiff.train`), the harness and the commands write
through here."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

#: The lock file a training run holds in its out_dir.
LOCK = ".lock"


@contextlib.contextmanager
def errors_naming(path: str | Path) -> Iterator[None]:
    """Re-raise an OSError met in the block as one naming ``path``: a write to a file object
    names no file, and torch.save turns a full disk into a RuntimeError whose context is
    the OSError."""
    try:
        yield
    except Exception as err:
        os_err = err if isinstance(err, OSError) else err.__context__
        if not isinstance(os_err, OSError) or os_err.errno is None:
            raise
        raise OSError(os_err.errno, os_err.strerror, str(path)) from err


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path: str | Path, content: str | Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` (text, or ``content(file)``) through a temp file beside it, fsync and
    rename: readers see the old file or the new one, never half of one. A failure removes
    the temp file and raises an OSError naming ``path``; a SIGKILL can leave the temp
    file, which :func:`remove_orphans` deletes."""
    path = Path(path)
    write = (lambda f: f.write(content.encode())) if isinstance(content, str) else content
    with errors_naming(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 -> what open() would give
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def umask() -> int:
    """This process's umask (read from /proc where it can be, so nothing is changed)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_save(obj: object, path: Path) -> None:
    """torch.save through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def remove_orphans(*paths: Path) -> None:
    """Delete the temp files that a killed :func:`atomic_write` of each path left."""
    for path in paths:
        for tmp in path.parent.glob(f"{glob.escape(_temp_prefix(path))}*.tmp"):
            tmp.unlink(missing_ok=True)


def open_lock_file(path: Path) -> int:
    """Open (or create) the lock file ``path`` for reading and writing without following
    a symbolic link (O_NOFOLLOW) or blocking on a FIFO; refuse anything but a regular file
    with one link, so that a link planted in a shared out_dir cannot make the run
    overwrite another file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fix = f"delete {path} (gmdiff recreates it) or choose another out_dir"
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OSError(
                errno.ELOOP, f"is a symbolic link, which gmdiff does not follow; {fix}", str(path)
            ) from None
        raise OSError(err.errno, err.strerror, str(path)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link"
        raise OSError(errno.EPERM, f"is {what}, which gmdiff does not write to; {fix}", str(path))
    os.set_blocking(fd, True)
    return fd


@contextlib.contextmanager
def lock_dir(
    folder: Path, name: str = LOCK, holder: str = "another run", wait: bool = False
) -> Iterator[None]:
    """Hold an exclusive flock on ``folder/name`` (which records our PID) for the block;
    while another process holds it, fail at once, naming the folder and the holder's PID,
    or, with ``wait``, block until it is released. The kernel releases the lock when its
    holder exits, however it dies, so it is never left stale; the file itself stays
    (:func:`open_lock_file`: never through a link)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = open_lock_file(folder / name)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise BlockingIOError(
                f"out_dir {folder} is in use by {holder} (PID {pid}); wait for it to "
                "end or choose another out_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The state of a trainer checkpoint; a missing, corrupt or foreign file raises an
    error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train first (gmdiff train) or fix the path"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        if err.filename is not None:  # e.g. permission denied: the file is named
            raise
        raise ValueError(  # a truncated file: EINVAL from a seek, no file name
            f"checkpoint {path} is truncated or corrupt ({err.strerror or err}); delete it or "
            "point to another one"
        ) from err
    except Exception as err:  # torch raises RuntimeError, KeyError, EOFError, ...
        raise ValueError(
            f"checkpoint {path} is corrupt or not a torch checkpoint; delete it or point to "
            "another one"
        ) from err
    keys = ("model", "ema", "optimizer", "step")
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path} is not a gmdiff training checkpoint: it lacks {missing}")
    return state


def load_state(module: nn.Module, state: dict, path: Path, hint: str) -> None:
    """``module.load_state_dict(state)``, refusing the weights of another architecture
    with one sentence (torch lists every mismatched tensor) that ends with ``hint``."""
    theirs, mine = (
        {k: tuple(getattr(v, "shape", ())) for k, v in d.items()}
        for d in (state, module.state_dict())
    )
    diff = sorted(k for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))
    if diff:
        k = diff[0]
        raise ValueError(
            f"checkpoint {path} holds another architecture: {len(diff)} tensors differ in "
            f"name or shape (e.g. {k}: {theirs.get(k, 'absent')} in the checkpoint, "
            f"{mine.get(k, 'absent')} in the model); {hint}"
        )
    module.load_state_dict(state)


def load_checkpoint(
    path: str | Path, model: nn.Module, *, ema: bool = True, map_location: str = "cpu"
) -> int:
    """Load the EMA (default) or raw weights of a trainer checkpoint into ``model``;
    returns the step it was written at."""
    state = read_checkpoint(path, map_location)
    hint = "build the model from the config it was trained with"
    load_state(model, state["ema" if ema else "model"], Path(path), hint)
    return int(state["step"])


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, tuples as lists (as YAML gives them)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def differences(old: dict, new: dict) -> list[str]:
    """``"key old -> new"`` for each key whose value differs between two flat dicts."""
    absent = object()
    show = lambda v: "(absent)" if v is absent else repr(v)
    return [
        f"{k} {show(old.get(k, absent))} -> {show(new.get(k, absent))}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k, absent) != new.get(k, absent)
    ]
