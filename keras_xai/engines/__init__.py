"""The iNNvestigate and deeplift engines: the packages run in worker processes (graph mode).

``keras_xai.create_analyzer(name, model, engine="innvestigate")`` or ``engine="deeplift"`` give
the native engine's API (``analyze``, ``relevances``, ``propagate_from``) on top of iNNvestigate
2.1.2 and deeplift 0.6.13. Each engine runs one worker process, started on first use, shared by
its analyzers and stopped at exit; see :mod:`keras_xai.engines.worker`. Importing this package
imports neither iNNvestigate nor deeplift.
"""
from __future__ import annotations

from keras_xai.analyzers import declare_engine_method
from keras_xai.analyzer import register_engine
from keras_xai.engines import deeplift_engine, innvestigate_engine
from keras_xai.engines.worker import (
    EngineError, WorkerCallError, WorkerCrashedError, WorkerTimeoutError, get_worker, shutdown_workers,
)

__all__ = ["EngineError", "WorkerCallError", "WorkerCrashedError", "WorkerTimeoutError", "get_worker",
           "shutdown_workers"]

#: Maps of the gradient family are reduced with max |.| over channels (the paper's convention).
_MAX_ABS_FAMILIES = ("gradient", "misc")


def _declare(engine: str, methods: dict) -> None:
    for name, (family, parameters, description) in methods.items():
        declare_engine_method(engine, name, family, parameters, description,
                              reduction="max_abs" if family in _MAX_ABS_FAMILIES else "sum")


register_engine(innvestigate_engine.ENGINE, innvestigate_engine.create)
register_engine(deeplift_engine.ENGINE, deeplift_engine.create)
_declare(innvestigate_engine.ENGINE, innvestigate_engine.METHODS)
_declare(deeplift_engine.ENGINE, deeplift_engine.METHODS)
