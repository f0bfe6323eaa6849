"""Sanity checks of "When Explanations Lie" (Sixt et al., ICML 2020): random logit, cascading
parameter randomization, cosine similarity convergence and the matrix-chain simulation.

- :mod:`sanity.experiments` (random logit, cascading randomization, two classes) and
  :mod:`sanity.csc_experiment` (cosine similarity convergence, scheduled by :mod:`sanity.csc_schedule`;
  its statistics in :mod:`sanity.csc`) run on :class:`sanity.experiment_inputs.ExperimentInputs`, per image
  and resumable (:mod:`sanity.per_image`, :mod:`sanity.store`, :mod:`sanity.run_key`);
- :mod:`sanity.simulation`: the matrix-chain simulation; :mod:`sanity.pattern_svd`: PatternAttribution's
  singular values;
- :mod:`sanity.commands` writes each experiment's files (JSON/CSV, :mod:`sanity.plots`, :mod:`sanity.report`);
  :mod:`sanity.cli` is ``python -m sanity``.
"""
