"""``create_analyzer``: one entry point for every method and engine."""
from __future__ import annotations

from typing import Callable

from keras_xai.analyzer import NativeAnalyzer
from keras_xai.analyzers import get_method

def _native_analyzer(method, model, **params):
    return (method.analyzer_class or NativeAnalyzer)(method, model, **params)


#: Engine name -> factory ``(method, model, **params) -> analyzer``. Other engines register here
#: (:mod:`keras_xai.engines` does on import; nothing here imports it: the dependency goes one way).
ENGINES: dict = {"native": _native_analyzer}


def register_engine(name: str, factory: Callable) -> None:
    """Make ``create_analyzer(..., engine=name)`` use ``factory(method, model, **params)``."""
    ENGINES[name] = factory


def create_analyzer(name: str, model, engine: str = "native", **params):
    """Create an analyzer for ``model`` with the method ``name``.

    Parameters
    ----------
    name : str
        A method from :func:`keras_xai.list_analyzers`, e.g. "lrp.alpha_1_beta_0" (iNNvestigate's names).
    model : keras.Model
        The model to explain (without a final softmax: :func:`keras_xai.model_wo_softmax`).
    engine : str
        Which implementation computes the attributions (:func:`keras_xai.list_analyzers` says which
        engines offer a method):

        - "native" (default): this package's eager TF2 engine (float32 or float64, fastest);
        - "innvestigate": iNNvestigate 2.1.2, every analyzer by its own name and parameters, plus
          ``rect_grad`` and the residual rules for ``Add`` / BatchNormalization (option
          ``residual_rules``, default True);
        - "deeplift": deeplift 0.6.13: ``deep_lift.rescale``, ``deep_lift.reveal_cancel`` and
          ``deep_lift.ablation``, with converters for ``Add``, ``GlobalAveragePooling2D`` and
          ``ZeroPadding2D``.

        The two package engines run in a worker process (graph mode), started on first use;
        they compute in float32 and take ``timeout=`` (seconds per call). See
        :mod:`keras_xai.engines`.
    **params
        The method's parameters (e.g. ``epsilon=0.1``) and ``dtype="float64"`` (native engine).

    Returns
    -------
    An analyzer with ``analyze``, ``relevances`` and ``propagate_from``.
    """
    method = get_method(name)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; available: {sorted(ENGINES)}")
    if engine not in method.engines:
        raise ValueError(f"{name} is not available in the {engine} engine; use "
                         f"{' or '.join(f'engine={e!r}' for e in method.engines)}")
    return ENGINES[engine](method, model, **params)
