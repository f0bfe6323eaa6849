"""The LSTM MNIST thesis, reproduced and finished: SVD and low-rank analyses of the output layer of a
2-layer LSTM classifier, PCA/t-SNE of its outputs and hidden states, an LSTM autoencoder and VAE, and the
thesis' proposed next step, low-rank gate matrices seen through a decoder of the hidden state.

Layers (pure functions first, then experiments, then figures):

- :mod:`lstm_svd.linalg`: ``svd``, ``low_rank(W, keep=[...])`` (1-based directions as in the thesis),
  ``cosine_gramian``, ``angles_degrees``, ``pca``, ``upper_envelope`` (rank-1 geometry).
- :mod:`lstm_svd.metrics`: confusion matrices, per-class recall, predicted / lost classes.
- :mod:`lstm_svd.states`: the classifier's hidden states, computed once and cached; gate blocks.
- :mod:`lstm_svd.experiments`: experiment functions returning plain results.
- :mod:`lstm_svd.generative`: LSTM autoencoder, LSTM VAE, classifier on VAE samples, h -> image decoder.
- :mod:`lstm_svd.plots`, :mod:`lstm_svd.report`: figures and ``report.md``.
- :mod:`lstm_svd.context`: what every command needs, loaded once; :mod:`lstm_svd.commands` runs the
  commands (:mod:`lstm_svd.commands_classifier`, :mod:`lstm_svd.commands_generative`,
  :mod:`lstm_svd.commands_gates`) and writes their files; :mod:`lstm_svd.cli` parses the command line.

Command line: ``python -m lstm_svd {train,output-layer,lowrank,embed,autoencoder,vae,gates,all} --out DIR``
(``--quick`` for a few-minute run); see ``python -m lstm_svd --help``.
"""
_EXPORTS = {
    "experiments": ("Variant", "evaluate_classifier", "gate_lowrank", "lowrank_variants", "output_layer_analysis",
                    "output_layer_variants", "rank_one_geometry", "variant_family"),
    "linalg": ("angles_degrees", "cosine_gramian", "low_rank", "pca", "svd", "upper_envelope"),
    "metrics": ("confusion_matrix", "per_class_recall"),
    "states": ("HiddenStates", "hidden_states", "output_layer"),
}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str):
    # Lazy: `python -m lstm_svd` must be able to quiet TensorFlow before it is imported.
    import importlib

    for module, names in _EXPORTS.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
