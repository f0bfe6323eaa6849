"""Starting and calling the worker processes of the engines that need TensorFlow's graph mode.

iNNvestigate 2.1.2 and deeplift 0.6.13 need ``tf.compat.v1.disable_eager_execution()``, which is
process-wide and would break the caller's eager code (and the native engine). Each of these engines
therefore runs its package in one child process per engine, which this module manages:

- started on first use, reused by every analyzer of the engine, stopped at interpreter exit;
- requests and replies are pickled dictionaries over two private pipes; arrays travel as ``.npy``
  files in a private exchange folder (deleted file by file after each call, and as a whole at exit);
- a worker that dies or hangs raises :class:`WorkerCrashedError` / :class:`WorkerTimeoutError`
  with the tail of its output; the next call starts a fresh worker. The caller never goes down
  with it: nothing of the packages is imported into the caller.

This module is the caller (parent) side: starting a worker, calling it, and turning its failures
into the errors above. The child side, the request loop run inside the worker process
(:func:`~keras_xai.engines.worker_child.serve`, :func:`~keras_xai.engines.worker_child.run_worker`,
called by the engines' ``*_worker_main`` modules), is :mod:`keras_xai.engines.worker_child`.
"""
from __future__ import annotations

import atexit
import collections
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.connection import Connection

import numpy as np

#: Seconds a call may take before the worker counts as hung (override per analyzer with
#: ``timeout=`` or for the whole process with $KERAS_XAI_WORKER_TIMEOUT).
DEFAULT_TIMEOUT = float(os.environ.get("KERAS_XAI_WORKER_TIMEOUT", 3600))
#: Lines of worker output kept for error messages.
OUTPUT_LINES = 400


class EngineError(RuntimeError):
    """An engine's worker process failed (base class)."""


class WorkerCrashedError(EngineError):
    """The worker process died during a call; the next call starts a new one."""


class WorkerTimeoutError(EngineError):
    """The worker did not answer in time and was killed; the next call starts a new one."""


class WorkerCallError(EngineError):
    """The worker raised an exception that has no better-suited type in the caller."""


class _NotReceived(Exception):
    """The worker died before it read the request (so sending it to a new worker is safe)."""


def _exchange_root() -> str:
    return os.environ.get("KERAS_XAI_WORKER_TMPDIR") or tempfile.gettempdir()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_folders(root: str) -> None:
    """Delete the exchange folders of callers that died with their workers (e.g. both killed with
    SIGKILL, so neither could clean up). A folder is named ``keras_xai_<engine>_<caller pid>_*``."""
    try:
        entries = os.listdir(root)
    except OSError:
        return
    for entry in entries:
        parts = entry.split("_")
        if len(parts) < 5 or parts[:2] != ["keras", "xai"] or not parts[3].isdigit():
            continue
        if not _process_exists(int(parts[3])):
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


class Worker:
    """One child process running ``python -m <module>``, restarted whenever it has died.

    Parameters
    ----------
    name : str
        Engine name, for messages ("innvestigate", "deeplift").
    module : str
        Module run as ``python -m module``; it calls
        :func:`keras_xai.engines.worker_child.run_worker`.
    """

    def __init__(self, name: str, module: str):
        self.name = name
        self.module = module
        remove_stale_folders(_exchange_root())
        self.directory = tempfile.mkdtemp(prefix=f"keras_xai_{name}_{os.getpid()}_", dir=_exchange_root())
        self._process = None
        self._send = None
        self._receive = None
        self._output = collections.deque(maxlen=OUTPUT_LINES)
        self._reader = None
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._pending_releases = []
        self._owner_pid = os.getpid()
        self.starts = 0  # how many processes were started (for tests and diagnostics)
        self.closed = False
        atexit.register(self.close)

    # --- process lifecycle ---------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Process id of the running worker (None if none is running)."""
        return self._process.pid if self.alive else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _start(self) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        environment = dict(os.environ)
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        environment["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-m", self.module, str(request_read), str(reply_write), self.directory]
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(request_read, reply_write), env=environment, start_new_session=True,
            )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._send = Connection(request_write, readable=False)
        self._receive = Connection(reply_read, writable=False)
        self._output.clear()
        self._reader = threading.Thread(target=self._drain, args=(self._process.stdout,),
                                        name=f"keras_xai-{self.name}-output", daemon=True)
        self._reader.start()
        self.starts += 1

    def _drain(self, stream) -> None:
        echo = os.environ.get("KERAS_XAI_WORKER_ECHO") == "1"
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._output.append(line)
            if echo:
                print(f"[{self.name} worker] {line}", file=sys.stderr)
        stream.close()

    def output_tail(self, lines: int = 30) -> str:
        """The last lines the worker printed (stdout and stderr), without TensorFlow's chatter."""
        time.sleep(0.05)  # let the reader thread catch the last lines of a dying process
        kept = [line for line in self._output if not _is_noise(line)]
        return "\n".join(kept[-lines:])

    def _stop(self, graceful: bool = True) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if graceful and process.poll() is None:
            try:
                self._send.send({"op": "exit"})
                process.wait(timeout=5)
            except Exception:  # broken pipe, timeout: fall through to kill
                pass
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait()
        for connection in (self._send, self._receive):
            if connection is not None:
                connection.close()
        self._send = self._receive = None
        if self._reader is not None:
            self._reader.join(timeout=2)

    def kill(self) -> None:
        """Kill the worker process now (it is restarted by the next call)."""
        with self._lock:
            self._stop(graceful=False)

    def close(self) -> None:
        """Stop the worker and delete the exchange folder (registered with atexit)."""
        if self.closed or os.getpid() != self._owner_pid:
            return
        self.closed = True
        with self._lock:
            self._stop(graceful=True)
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- calls -----------------------------------------------------------------------------

    def release(self, key: str) -> None:
        """Tell the worker (with the next request) that it may forget state kept under ``key``."""
        self._pending_releases.append(key)

    def new_path(self, suffix: str) -> str:
        """A fresh file name in the exchange folder."""
        return os.path.join(self.directory, f"{uuid.uuid4().hex}{suffix}")

    def call(self, request: dict, arrays: dict | None = None, timeout: float | None = None):
        """Send ``request`` (plus ``arrays`` as .npy files) and return ``(reply, arrays)``.

        Raises
        ------
        WorkerCrashedError, WorkerTimeoutError
            The worker died or hung (it is gone; the next call starts a new one).
        Exception
            What the worker raised, as the closest caller-side type (see :func:`raise_remote`).
        """
        if self.closed:
            raise EngineError(f"the {self.name} worker was closed (the interpreter is exiting)")
        timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        with self._lock:
            number = next(self._counter)
            written = []
            try:
                files = {}
                for key, value in (arrays or {}).items():
                    path = os.path.join(self.directory, f"request{number}_{key}.npy")
                    np.save(path, np.ascontiguousarray(value))
                    written.append(path)
                    files[key] = path
                message = dict(request, arrays=files, reply_prefix=os.path.join(self.directory, f"reply{number}_"),
                               release=list(self._pending_releases))
                self._pending_releases.clear()
                try:
                    reply = self._send_to_live_worker(message, timeout)
                except _NotReceived:
                    # The worker died between calls (or before it read the request): a new one gets it.
                    reply = self._send_to_live_worker(message, timeout, last_try=True)
                results = {}
                for key, path in reply.pop("arrays", {}).items():
                    written.append(path)
                    results[key] = np.load(path)
                if not reply.get("ok", False):
                    raise_remote(self.name, reply)
                return reply, results
            finally:
                for path in written:
                    remove_file(path)
                for leftover in _glob_prefix(self.directory, f"reply{number}_"):
                    remove_file(leftover)

    def _send_to_live_worker(self, message: dict, timeout: float, last_try: bool = False) -> dict:
        if not self.alive:
            self._stop(graceful=False)
            self._start()
        deadline = time.monotonic() + timeout
        try:
            self._send.send(message)
        except (BrokenPipeError, OSError):
            self._not_received(last_try)
        acknowledgement = self._receive_before(deadline, timeout, received=False, last_try=last_try)
        if not acknowledgement.get("received"):
            raise EngineError(f"the {self.name} worker answered out of turn: {acknowledgement!r}")
        return self._receive_before(deadline, timeout, received=True, last_try=last_try)

    def _not_received(self, last_try: bool):
        if last_try:
            self._crashed("before it could read the request")
        self._stop(graceful=False)
        raise _NotReceived()

    def _receive_before(self, deadline: float, timeout: float, received: bool, last_try: bool) -> dict:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self.output_tail()
                self._stop(graceful=False)
                raise WorkerTimeoutError(
                    f"the {self.name} worker did not answer within {timeout:g} s and was killed "
                    f"(pass timeout=... to create_analyzer or set $KERAS_XAI_WORKER_TIMEOUT for "
                    f"longer calls); the next call starts a new worker.{_format_tail(tail)}"
                )
            if self._receive.poll(min(remaining, 0.5)):
                try:
                    return self._receive.recv()
                except (EOFError, OSError):
                    if not received:
                        self._not_received(last_try)
                    self._crashed("during the call")
            elif not self.alive:
                if not received:
                    self._not_received(last_try)
                self._crashed("during the call")

    def _crashed(self, when: str):
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        code = None if process is None else process.poll()
        status = "" if code is None else (f" (killed by signal {-code})" if code < 0 else f" (exit code {code})")
        tail = self.output_tail()
        self._stop(graceful=False)
        raise WorkerCrashedError(
            f"the {self.name} worker process died {when}{status}; the next call starts a new "
            f"worker.{_format_tail(tail)}"
        )


def _format_tail(tail: str) -> str:
    return f"\nLast worker output:\n{tail}" if tail.strip() else ""


#: TensorFlow start-up messages that say nothing about a failure.
_NOISE = ("cuda", "cudnn", "cufft", "cublas", "tensorrt", "onednn", "cpu_feature_guard",
          "rebuild tensorflow", "to enable the following instructions")


def _is_noise(line: str) -> bool:
    lowered = line.lower()
    return any(marker in lowered for marker in _NOISE)


def remove_file(path: str) -> None:
    """Delete ``path`` if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _glob_prefix(directory: str, prefix: str) -> list:
    try:
        return [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(prefix)]
    except FileNotFoundError:
        return []


def raise_remote(engine: str, reply: dict):
    """Raise the worker's exception as the closest type the caller knows.

    ``UnsupportedLayerError`` (a model the package cannot handle) keeps its type, so do the
    built-in ``TypeError``, ``ValueError``, ``KeyError``, ``NotImplementedError``; anything else
    becomes :class:`WorkerCallError` with the worker's traceback.
    """
    from keras_xai.canonize import UnsupportedLayerError

    kind = reply.get("error_type", "Exception")
    message = reply.get("message", "")
    if kind == "UnsupportedLayerError":
        raise UnsupportedLayerError(message)
    builtin = {"TypeError": TypeError, "ValueError": ValueError, "KeyError": KeyError,
               "NotImplementedError": NotImplementedError, "IndexError": IndexError}
    if kind in builtin:
        error = builtin[kind](f"[{engine} worker] {message}")
        error.add_note(f"Worker traceback:\n{reply.get('traceback', '')}")
        raise error
    raise WorkerCallError(f"the {engine} worker raised {kind}: {message}\n"
                          f"Worker traceback:\n{reply.get('traceback', '')}")


_WORKERS: dict = {}
_WORKERS_LOCK = threading.Lock()


def get_worker(name: str, module: str) -> Worker:
    """The process-wide worker of one engine (created on first use, not started until a call)."""
    with _WORKERS_LOCK:
        worker = _WORKERS.get(name)
        if worker is None or worker.closed:
            worker = _WORKERS[name] = Worker(name, module)
        return worker


def shutdown_workers() -> None:
    """Stop every engine worker and delete their folders (also done automatically at exit)."""
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for worker in workers:
        worker.close()
