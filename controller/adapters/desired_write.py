"""Replacing desired/ files as one edit, and putting them back byte for byte.

A running daemon rolls out whatever desired/*.yaml says, so a file there is never written in
place: the new text goes to a temp file beside it (same file system, so os.replace is
atomic; not *.yaml, so the watcher and the loader ignore it), and only a complete file is
ever visible. An edit also has an inverse: `berth deploy --commit` must leave desired/
exactly as it was when the commit fails, so the original bytes are kept and restored the
same way (temp file, fsync, os.replace, fsync of the directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from controller.adapters import git
from controller.errors import BerthError, Retry

UNCHANGED = "desired/ left unchanged"


class CommitAborted(BerthError):
    """`git commit` failed after the write; desired/ and the index were put back."""


class StaleFiles(BerthError):
    """A file changed between berth reading it and replacing it; nothing was written."""

    def __init__(self, files: list[str]) -> None:
        self.files = files
        super().__init__(f"{', '.join(files)} changed while berth was editing it")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def locked(directory: str) -> Iterator[None]:
    """Serialises berth processes editing the same desired/ (advisory; git has its own)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM's default action ends the process without running `finally` blocks, which
    would strand a written-but-uncommitted edit; inside this block it raises
    KeyboardInterrupt instead, so the undo runs. (Signals reach only the main thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds SIGINT and SIGTERM back while an undo runs (a second Ctrl-C must not stop a
    restore halfway); they are delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class RestoreFailed(BerthError):
    """The original bytes could not be written back: desired/ is NOT unchanged."""

    retry = Retry.TERMINAL


def _stage(real: str, data: bytes) -> str:
    """A temp file beside `real`, fsynced, with the original's permissions."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(real)}.", suffix=".berth-tmp", dir=os.path.dirname(real)
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(os.stat(real).st_mode))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _fsync_dirs(reals: list[str]) -> None:
    """A rename is durable once its directory is on disk."""
    for directory in sorted({os.path.dirname(r) for r in reals}):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@dataclass
class Edit:
    """One edit of desired/ files: the bytes berth writes and, once applied, the bytes it
    replaced. Keys are the paths as listed in desired/; a symlink is followed, and its
    target is what gets replaced (the link stays a link)."""

    new: Mapping[str, bytes]
    old: dict[str, bytes] = field(default_factory=dict)
    # a hard link to each original, made before it is replaced: putting it back then needs
    # no free space (a full disk would make the commit fail and a staged undo fail too)
    backups: dict[str, str] = field(default_factory=dict)

    def apply(self, expected: Mapping[str, str]) -> None:
        """Stage every file, check none changed since it was read (`expected`: sha256 of
        the bytes read), then replace them all. Interrupted or failing halfway, it puts back
        what it replaced: the edit is whole or absent. Call under `locked`."""
        staged: dict[str, str] = {}
        try:
            for path, data in self.new.items():
                staged[path] = _stage(os.path.realpath(path), data)
            found = {path: _read(path) for path in self.new}
            current = {p: data for p, data in found.items() if data is not None}
            stale = [p for p in found if p not in current or sha256(current[p]) != expected[p]]
            if stale:
                raise StaleFiles(stale)
            for path, tmp in list(staged.items()):
                self.old[path] = current[path]  # recorded first: undo checks what is there
                self._keep_original(path)
                os.replace(tmp, os.path.realpath(path))
                del staged[path]
        except BaseException:
            self.undo()
            raise
        finally:
            for tmp in staged.values():
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        _fsync_dirs([os.path.realpath(p) for p in self.new])

    def _keep_original(self, path: str) -> None:
        real = os.path.realpath(path)
        name = os.path.join(
            os.path.dirname(real), f".{os.path.basename(real)}.{os.getpid()}.berth-orig"
        )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)  # left by a berth killed mid-edit
        try:
            os.link(real, name)
        except OSError:
            return  # no hard links here: undo stages a copy instead
        self.backups[path] = name

    def release(self) -> None:
        """The edit stays (written, or committed): the originals are not needed any more."""
        for name in self.backups.values():
            with contextlib.suppress(OSError):
                os.unlink(name)
        self.backups.clear()

    def undo(self) -> list[str]:
        """Puts the original bytes back; returns the files that held neither those nor
        berth's when undone. Their change is discarded anyway: it was made during the
        failed commit, most likely by a hook reformatting the file, and leaving it would
        leave an uncommitted tag in desired/ for the daemon to roll out."""
        changed: list[str] = []
        reals: list[str] = []
        with signals_deferred():
            for path, data in self.old.items():
                now = _read(path)
                if now == data:
                    continue  # interrupted before its os.replace: nothing to undo
                if now != self.new[path]:
                    changed.append(path)
                real = os.path.realpath(path)
                backup = self.backups.pop(path, None)
                try:
                    if backup is not None and _read(backup) == data:
                        os.replace(backup, real)  # a rename: works on a full disk
                    else:
                        os.replace(_stage(real, data), real)
                except OSError as exc:
                    raise RestoreFailed(
                        f"could not put {path} back ({exc.strerror or exc}): it holds the "
                        f"new, uncommitted tag; restore it with `git checkout -- {path}`"
                    ) from exc
                reals.append(real)
            _fsync_dirs(reals)
        self.release()
        return changed


# -- an edit and its commit, all or nothing --------------------------------------------------


def _undo(edit: Edit, before: git.Before, files: Sequence[str]) -> str:
    """Files first (they are what a daemon watches), then their index entries; returns the
    end of the one-line message saying what state desired/ is in."""
    changed = edit.undo()
    try:
        git.restore_index(before, files)
        index = ""
    except git.GitError as exc:
        index = f"; the index entries of {', '.join(files)} could not be put back: {exc}"
    if changed:
        names = ", ".join(changed)
        return f"{UNCHANGED} (discarded a change made to {names} during the commit){index}"
    return f"{UNCHANGED}{index}"


def _landed(desired: str, before: git.Before, files: Sequence[str]) -> str | None:
    """The commit, if it exists despite the failure; unknown counts as no (then undo)."""
    with contextlib.suppress(git.GitError):
        return git.landed(desired, before, files)
    return None


def commit_edit(
    desired: str,
    edit: Edit,
    expected: Mapping[str, str],
    *,
    before: git.Before,
    files: Sequence[str],
    message: str,
    warn: Callable[[str], None],
) -> str:
    """Apply `edit`, then `git commit --only` the `files` (real paths); returns the commit.

    The files are written before the commit, not after it through a side index, because
    hooks are an operator's policy: `git commit` must run them, and they may check the work
    tree, which therefore has to hold the edit. The caller checks every failure that can be
    foreseen first (git.index_lock, git.identity_problem...), so the time a daemon could see
    the uncommitted edit is that of `git commit` itself. When it fails, or berth is
    interrupted (Ctrl-C, SIGTERM), the original bytes go back atomically and so do the index
    entries of the files, unless the commit landed after all: then desired/ keeps what HEAD
    has. Raises CommitAborted (one line, saying desired/ is unchanged) or re-raises the
    interrupt."""
    with locked(desired), sigterm_raises():
        try:
            edit.apply(expected)
            commit = git.commit(desired, files, message)
            edit.release()
            return commit
        except BaseException as exc:
            with signals_deferred():
                sha = _landed(desired, before, files)
                note = f"commit {sha[:12]} holds the edit" if sha else _undo(edit, before, files)
            if sha is not None and isinstance(exc, git.GitError):
                edit.release()
                warn(f"{exc}, but {note}; desired/ keeps it")
                return sha
            if isinstance(exc, KeyboardInterrupt):
                warn(f"interrupted; {note}")
            elif isinstance(exc, git.GitError):
                raise CommitAborted(f"{exc}; {note}") from exc
            raise
