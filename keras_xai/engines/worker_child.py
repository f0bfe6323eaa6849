"""The child side of the engines' worker processes: the request loop run inside a worker.

The caller starts a worker with :class:`keras_xai.engines.worker.Worker`, which runs an engine's
``*_worker_main`` module as ``python -m <module> R W DIRECTORY``; that module calls
:func:`run_worker` (or :func:`serve` directly). The loop reads pickled request dictionaries from
pipe ``R``, acknowledges each with ``{"received": True}``, and answers it on pipe ``W`` with a
reply dictionary; arrays travel as ``.npy`` files in the caller's exchange folder ``DIRECTORY``.
An exception in a request goes back as ``{"ok": False, "error_type", "message", "traceback"}``
(raise :class:`RemoteError` to choose the type name) and the loop goes on. Nothing here is
imported by the caller.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from multiprocessing.connection import Connection

import numpy as np


class RemoteError(Exception):
    """Raised inside a worker to send a specific error type name to the caller."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def _orphaned(caller: int, wait: float = 5.0) -> bool:
    """Whether the caller process has died (this process was handed to another parent). A dying
    process closes its files before its children are re-parented, so the pipe's end can come
    first: wait a little for the re-parenting."""
    deadline = time.monotonic() + wait
    while os.getppid() == caller:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def serve(handle) -> None:
    """The worker's main loop: ``handle(request) -> (reply dict, {key: array})`` for each request.

    Called by the ``*_worker_main`` modules with the two pipe descriptors in ``sys.argv``.
    Anything the packages print goes to the caller's log of worker output, never into the pipes.
    """
    request_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    directory = sys.argv[3] if len(sys.argv) > 3 else None
    caller = os.getppid()
    receive = Connection(request_fd, writable=False)
    send = Connection(reply_fd, readable=False)
    while True:
        try:
            request = receive.recv()
        except (EOFError, OSError):
            # The caller closed the pipe. If it died without cleaning up (SIGTERM, SIGKILL: no
            # atexit), its exchange folder is ours to delete.
            if directory and _orphaned(caller):
                shutil.rmtree(directory, ignore_errors=True)
            break
        if request.get("op") == "exit":
            break
        try:
            send.send({"received": True})  # the caller may resend a request the worker never got
        except (BrokenPipeError, OSError):
            break
        try:
            reply, arrays = handle(request)
            files = {}
            for key, value in arrays.items():
                path = f"{request['reply_prefix']}{key}.npy"
                np.save(path, np.ascontiguousarray(value))
                files[key] = path
            reply = dict(reply, ok=True, arrays=files)
        except BaseException as error:  # everything goes back to the caller, the loop goes on
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            reply = {"ok": False, "error_type": getattr(error, "error_type", type(error).__name__),
                     "message": str(error), "traceback": traceback.format_exc()}
        try:
            send.send(reply)
        except (BrokenPipeError, OSError):
            break


def debug_request(request: dict):
    """Requests every worker understands, for tests of the process handling:
    ``{"op": "debug", "action": "sleep" | "exit" | "raise" | "pid", ...}``."""
    action = request.get("action")
    if action == "sleep":
        time.sleep(float(request.get("seconds", 3600)))
    elif action == "exit":
        print(request.get("message", "worker exiting on request"), file=sys.stderr, flush=True)
        os._exit(int(request.get("code", 3)))
    elif action == "raise":
        raise RuntimeError(request.get("message", "requested failure"))
    return {"pid": os.getpid()}, {}


def session_config():
    """Options of the workers' TF1 sessions: Grappler off. Measured on the appendix-D net, batch 64:
    iNNvestigate's first calls took 2-3 s instead of 2.4-5.4 s (steady state the same or up to 10%
    faster), deeplift's first run 2 s instead of 9 s (its graphs are large)."""
    import tensorflow as tf
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


class ContextServer:
    """The ``handle`` of a worker that keeps one context per caller-side analyzer.

    ``make_context(spec)`` builds the context of a new analyzer id (graph, session, model); it is
    kept until the caller releases the id, then its ``close()`` is called. A request goes to
    ``context.handle(request, arrays)`` with its ``.npy`` files loaded.
    """

    def __init__(self, make_context):
        self.make_context = make_context
        self.contexts = {}

    def __call__(self, request: dict):
        for key in request.get("release", ()):
            context = self.contexts.pop(key, None)
            if context is not None:
                context.close()
        if request["op"] == "debug":
            return debug_request(request)
        spec = request["spec"]
        context = self.contexts.get(spec["id"])
        if context is None:
            context = self.contexts[spec["id"]] = self.make_context(spec)
        arrays = {key: np.load(path) for key, path in request["arrays"].items()}
        return context.handle(request, arrays)


def run_worker(make_context, setup=None) -> None:
    """Entry point of a ``*_worker_main`` module: ``setup()``, then serve a :class:`ContextServer`;
    an error outside a request is printed (the caller shows it) and ends the process."""
    try:
        if setup is not None:
            setup()
        serve(ContextServer(make_context))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
