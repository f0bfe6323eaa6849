"""The native engine: one backward pass over the canonical steps, compiled with ``tf.function``.

Each mode (input relevance only, relevance at every layer, injection at step k) is one
``tf.function`` with a fixed input signature (batch dimension ``None``), so it is traced once per
analyzer and reused for every batch size.

Methods that compare the input with a reference input (DeepLIFT) give the engine a
:class:`ReferencePass`. Then the forward pass runs on the input and the reference in one batch,
the pass computes a forward state per step (e.g. positive and negative contributions), the
backward quantity may be a tuple (e.g. positive and negative multipliers; rules that do not declare
``needs_reference`` are applied to each component), rules declaring ``needs_reference = True`` get
``context.reference`` (:class:`~keras_xai.rules.ReferenceContext`), and the pass decides what is
reported per step. Every rule is called the same way: ``rule(step, inputs, output, relevance, context)``.
Without a reference pass nothing of this runs: the other methods' passes are unchanged.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import tensorflow as tf

from keras_xai.canonize import CanonicalModel
from keras_xai.rules import Context, ReferenceContext

#: What the backward pass starts from at the selected output unit k:
#: "gradient" -> 1 (gradient family), "value" -> y_k (LRP), "relu_value" -> max(0, y_k) (Deep Taylor).
HEADS = ("gradient", "value", "relu_value")


class ReferencePass:
    """Interface of the reference-input extension of the engine (see the module docstring).

    Attributes
    ----------
    reference : float or array
        The reference input: a number, one input (shaped like one sample) or one per sample.
    """

    reference = 0.0

    def state(self, step, inputs, reference_inputs, output, reference_output, input_states):
        """Forward state of ``step`` (any nest of tensors, computed in forward order)."""
        return None

    def start(self, relevance):
        """The backward quantity from a tensor at the start of the pass (the head or an injected
        vector)."""
        return relevance

    def report(self, step, relevance, output, reference_output, state) -> tf.Tensor:
        """The reported tensor at ``step`` (``relevance`` is None where the pass never arrived)."""
        return tf.zeros_like(output) if relevance is None else relevance


def _sum(parts: list):
    """Sum of the backward quantities arriving at one step (tensors or tuples of tensors)."""
    if not isinstance(parts[0], tuple):
        return tf.add_n(parts)
    if all(len(p) == 2 and p[0] is p[1] for p in parts):
        # Equal components (DeepLIFT's multipliers usually are): sum once, keep them one object.
        total = tf.add_n([p[0] for p in parts])
        return (total, total)
    return tuple(tf.add_n(list(components)) for components in zip(*parts))


def _componentwise(rule, step, inputs, output, relevance: tuple, context: Context) -> list:
    """A rule for one tensor applied to each component of a tuple; per input, a tuple again."""
    if len(relevance) == 2 and relevance[0] is relevance[1]:
        return [(r, r) for r in rule(step, inputs, output, relevance[0], context)]
    per_component = [rule(step, inputs, output, r, context) for r in relevance]
    return [tuple(parts) for parts in zip(*per_component)]


class Engine:
    """Backward passes over a canonical model with one rule per step.

    Parameters
    ----------
    model : CanonicalModel
        Steps in topological order.
    rules : sequence of Rule or None
        ``rules[i]`` propagates through ``model.steps[i]`` (None for the input step).
    head : str
        One of :data:`HEADS`.
    dtype : tf.DType
        Compute dtype of every intermediate.
    reference_pass : ReferencePass, optional
        For methods comparing the input with a reference input (DeepLIFT).
    """

    def __init__(self, model: CanonicalModel, rules: Sequence, head: str, dtype: tf.DType,
                 reference_pass: ReferencePass | None = None):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self._steps = model.steps
        self._output = model.output_index
        self._rules = list(rules)
        self._head = head
        self.dtype = dtype
        self._output_units = int(np.prod(model.steps[model.output_index].output_shape[1:]))
        self._input_spec = tf.TensorSpec([None, *model.steps[0].output_shape[1:]], dtype)
        self._selection_spec = tf.TensorSpec([None], tf.int32)
        self._functions = {}
        self._reference_pass = reference_pass
        if reference_pass is not None:
            self._reference = np.asarray(reference_pass.reference, dtype=dtype.as_numpy_dtype)
            sample_shape = tuple(model.steps[0].output_shape[1:])
            if None not in sample_shape:  # fail at creation, not at the first call
                count = len(self._reference) if self._reference.ndim > len(sample_shape) else 1
                self._reference_batch(np.zeros((count, *sample_shape)))

    # --- graph pieces ------------------------------------------------------------------------

    def _ancestors(self, index: int) -> set:
        """Steps whose outputs ``index`` depends on (including itself)."""
        needed, stack = set(), [index]
        while stack:
            i = stack.pop()
            if i not in needed:
                needed.add(i)
                stack.extend(self._steps[i].inputs)
        return needed

    def _forward(self, x, needed: set) -> dict:
        activations = {0: x}
        for step in self._steps[1:]:
            if step.index in needed:
                activations[step.index] = step.operation.forward([activations[i] for i in step.inputs])
        return activations

    def _reference_batch(self, x) -> np.ndarray:
        """The reference input for the batch ``x``: one per sample, or a single one (batch size 1)
        when all samples share it, so that the forward pass computes it once."""
        shape = tuple(np.shape(x))
        reference = self._reference
        try:
            if reference.ndim == len(shape) and reference.shape[0] != 1:  # one reference per sample
                return np.ascontiguousarray(np.broadcast_to(reference, shape))
            return np.ascontiguousarray(np.broadcast_to(reference, (1, *shape[1:])))
        except ValueError as error:
            raise ValueError(
                f"reference of shape {reference.shape} does not fit inputs of shape {shape}: give a number, "
                f"one input shaped {shape[1:]}, or one reference per sample shaped {shape}") from error

    def _forward_with_reference(self, x, reference, needed: set) -> tuple:
        """Activations of ``x`` and of ``reference`` (one forward pass on both) and the reference
        pass's state of every needed step. A shared reference has batch size 1 and broadcasts."""
        both = self._forward(tf.concat([x, reference], 0), needed)
        # One SplitV per activation (a slice pair is ~12 ops to trace: a third of DeepLIFT's graph).
        sizes = tf.stack([tf.shape(x)[0], tf.shape(reference)[0]])
        parts = {i: tf.split(a, sizes, num=2) for i, a in both.items()}
        activations = {i: part[0] for i, part in parts.items()}
        references = {i: part[1] for i, part in parts.items()}
        states = {}
        for step in self._steps:
            if step.index in needed:
                states[step.index] = self._reference_pass.state(
                    step, [activations[i] for i in step.inputs], [references[i] for i in step.inputs],
                    activations[step.index], references[step.index], [states[i] for i in step.inputs])
        return activations, (references, states)

    def _output_relevance(self, output, selection):
        """Relevance at the model output: one-hot at the selected unit (-1 = the maximal unit)."""
        flat = tf.reshape(output, [-1, self._output_units])
        maximal = tf.argmax(flat, axis=1, output_type=tf.int32)
        index = tf.where(selection < 0, maximal, selection)
        one_hot = tf.one_hot(index, self._output_units, dtype=flat.dtype)
        if self._head == "value":
            one_hot = one_hot * flat
        elif self._head == "relu_value":
            one_hot = one_hot * tf.nn.relu(flat)
        return tf.reshape(one_hot, tf.shape(output))

    def _backward(self, activations: dict, start: int, relevance, reference=None, shared: dict | None = None) -> dict:
        """Relevance at the output of every step at or below ``start`` that it reaches.

        ``reference`` is ``(reference activations, states)`` from :meth:`_forward_with_reference`;
        ``shared`` the rules' :meth:`~keras_xai.rules.Rule.shared_state` per step, one row per row of
        the activations.
        """
        if reference is not None:
            relevance = self._reference_pass.start(relevance)
        pending = {start: [relevance]}
        reached = {}
        for index in range(start, -1, -1):
            parts = pending.pop(index, None)
            if parts is None:
                continue
            total = parts[0] if len(parts) == 1 else _sum(parts)
            reached[index] = total
            if index == 0:  # the model input
                break
            step = self._steps[index]
            inputs = [activations[i] for i in step.inputs]
            rule = self._rules[index]
            context = Context(shared=shared.get(index) if shared else None,
                              reference=self._reference_at(step, reference) if rule.needs_reference else None)
            if isinstance(total, tuple) and not rule.needs_reference:
                results = _componentwise(rule, step, inputs, activations[index], total, context)
            else:
                results = rule(step, inputs, activations[index], total, context)
            for source, part in zip(step.inputs, results):
                pending.setdefault(source, []).append(part)
        return reached

    @staticmethod
    def _reference_at(step, reference) -> ReferenceContext | None:
        """The reference pass's values at ``step`` (None without a reference pass)."""
        if reference is None:
            return None
        references, states = reference
        return ReferenceContext([references[i] for i in step.inputs], references[step.index],
                                [states[i] for i in step.inputs], states[step.index])

    def _reported(self, activations: dict, reached: dict, candidates, reference=None) -> tuple:
        """Relevance per reported step (zeros where the backward pass never arrived)."""
        if reference is not None:
            references, states = reference
            return tuple(
                self._reference_pass.report(self._steps[i], reached.get(i), activations[i], references[i], states[i])
                for i in candidates
            )
        return tuple(
            reached[i] if i in reached else tf.zeros_like(activations[i])
            for i in candidates
        )

    def reported_steps(self, start: int | None = None) -> list:
        """Indices of the steps :meth:`relevances` / :meth:`inject` return, in forward order."""
        needed = self._ancestors(self._output if start is None else start)
        return [s.index for s in self._steps if s.index in needed and (s.reported or s.index == 0)]

    # --- compiled entry points -----------------------------------------------------------------

    def _compiled(self, key, build):
        if key not in self._functions:
            self._functions[key] = build()
        return self._functions[key]

    @staticmethod
    def _tf_function(function, *input_signature):
        # TF counts traces per code object and warns about "retracing" once several analyzers
        # compile the same inner function; a partial has no code object, so each counts alone.
        return tf.function(functools.partial(function), input_signature=list(input_signature),
                           autograph=False)

    def predict(self, x) -> tf.Tensor:
        """Model output, flattened to (batch, units)."""
        def build():
            needed = self._ancestors(self._output)

            def predict(x):
                output = self._forward(x, needed)[self._output]
                return tf.reshape(output, [-1, self._output_units])
            return self._tf_function(predict, self._input_spec)
        return self._compiled("predict", build)(x)

    def _pass_inputs(self, x, needed: set, reference):
        """Forward pass: ``(activations, reference part)``; the second is None without a reference pass."""
        if self._reference_pass is None:
            return self._forward(x, needed), None
        return self._forward_with_reference(x, reference, needed)

    def _call(self, key, build, x, *args):
        """Run a compiled pass; with a reference pass the reference batch goes in after ``x``."""
        compiled = self._compiled(key, build)
        if self._reference_pass is None:
            return compiled(x, *args)
        return compiled(x, self._reference_batch(x), *args)

    def _signature(self, *specs) -> tuple:
        if self._reference_pass is None:
            return (self._input_spec, *specs)
        return (self._input_spec, self._input_spec, *specs)

    @staticmethod
    def _split_arguments(arguments: tuple, with_reference: bool) -> tuple:
        """``(x, reference or None, rest)`` from the compiled function's arguments."""
        if with_reference:
            return arguments[0], arguments[1], arguments[2:]
        return arguments[0], None, arguments[1:]

    def input_relevance(self, x, selection) -> tf.Tensor:
        """Relevance at the model input for the selected output units (``selection`` -1 = max)."""
        def build():
            needed = self._ancestors(self._output)
            with_reference = self._reference_pass is not None

            def input_relevance(*arguments):
                x, reference, (selection,) = self._split_arguments(arguments, with_reference)
                activations, extra = self._pass_inputs(x, needed, reference)
                head = self._output_relevance(activations[self._output], selection)
                reached = self._backward(activations, self._output, head, extra)
                if extra is not None:
                    return self._reported(activations, reached, [0], extra)[0]
                return reached.get(0, tf.zeros_like(x))
            return self._tf_function(input_relevance, *self._signature(self._selection_spec))
        return self._call("input", build, x, selection)

    def relevances(self, x, selection) -> tuple:
        """Relevance at every reported step's output (order of :meth:`reported_steps`)."""
        def build():
            needed = self._ancestors(self._output)
            candidates = self.reported_steps()
            with_reference = self._reference_pass is not None

            def relevances(*arguments):
                x, reference, (selection,) = self._split_arguments(arguments, with_reference)
                activations, extra = self._pass_inputs(x, needed, reference)
                head = self._output_relevance(activations[self._output], selection)
                reached = self._backward(activations, self._output, head, extra)
                return self._reported(activations, reached, candidates, extra)
            return self._tf_function(relevances, *self._signature(self._selection_spec))
        return self._call("all", build, x, selection)

    def inject(self, x, start: int, relevance, per_sample: int = 1) -> tuple:
        """Replace the relevance at step ``start``'s output by ``relevance`` and propagate down.

        ``relevance`` holds ``per_sample`` vectors per sample of ``x`` (sample-major rows); the result
        has its rows. Returns the relevance at every reported step ``start`` depends on (order of
        ``reported_steps(start)``).
        """
        return self.inject_many(x, (start,), (relevance,), (per_sample,))

    def inject_many(self, x, starts: Sequence[int], relevances: Sequence, per_sample: Sequence[int]) -> tuple:
        """:meth:`inject` at several steps in one compiled call: one trace serves every later call
        with the same steps and vectors per sample, one forward pass every injection (with a
        reference pass: one per distinct number of vectors per sample, on the repeated samples).
        Returns the results of the injections one after the other (``reported_steps(start)`` each)."""
        key, build = self._inject_many_function(starts, per_sample)
        return self._call(key, build, x, *relevances)

    def prepare_inject_many(self, starts: Sequence[int], per_sample: Sequence[int]) -> None:
        """Compile :meth:`inject_many` for these steps and vectors per sample without running it:
        tracing is Python work a thread can do while another pass runs. (Also running it once on one
        sample, so that TF instantiates the function ahead, was slower in the CSC protocol: 2.2-2.4
        vs 1.8-2.0 s; that run competes with the pass running meanwhile.)"""
        key, build = self._inject_many_function(starts, per_sample)
        self._compiled(key, build).get_concrete_function()

    def _inject_many_function(self, starts, per_sample) -> tuple:
        """(cache key, builder) of the compiled pass of :meth:`inject_many`."""
        starts, per_sample = tuple(int(s) for s in starts), tuple(int(k) for k in per_sample)

        def build():
            needed = set().union(*(self._ancestors(s) for s in starts))
            candidates = [self.reported_steps(s) for s in starts]
            specs = [tf.TensorSpec([None, *self._steps[s].output_shape[1:]], self.dtype) for s in starts]
            with_reference = self._reference_pass is not None

            def inject(*arguments):
                x, reference, relevances = self._split_arguments(arguments, with_reference)
                # vectors per sample -> (activations, reference part, shared rule states) for that many rows
                expanded = {}
                if with_reference:
                    for k in sorted(set(per_sample)):
                        # Reference states mix per-sample and shared (batch 1) tensors: repeat the inputs.
                        if k == 1:
                            expanded[k] = (*self._pass_inputs(x, needed, reference), None)
                            continue
                        rows = self._rows_of_samples(x, k)
                        expanded[k] = (*self._pass_inputs(tf.gather(x, rows), needed,
                                                          self._repeat_per_sample_reference(reference, rows)), None)
                else:
                    # One forward pass per sample, its activations (and what the rules compute from
                    # them alone) repeated for the sample's vectors.
                    activations = self._pass_inputs(x, needed, reference)[0]
                    states = self._shared_states(activations, needed) if max(per_sample) > 1 else {}
                    for k in sorted(set(per_sample)):
                        if k == 1:
                            expanded[k] = (activations, None, None)
                            continue
                        rows = self._rows_of_samples(x, k)
                        expanded[k] = ({i: tf.gather(a, rows) for i, a in activations.items()}, None,
                                       {i: tf.nest.map_structure(lambda t: tf.gather(t, rows), state)
                                        for i, state in states.items()})
                reported = []
                for start, relevance, steps, k in zip(starts, relevances, candidates, per_sample):
                    activations, extra, shared = expanded[k]
                    reached = self._backward(activations, start, relevance, extra, shared=shared)
                    reported.extend(self._reported(activations, reached, steps, extra))
                return tuple(reported)
            return self._tf_function(inject, *self._signature(*specs))
        return ("inject", starts, per_sample), build

    def _shared_states(self, activations: dict, needed: set) -> dict:
        """Each rule's :meth:`~keras_xai.rules.Rule.shared_state` per step (None ones left out)."""
        states = {}
        for step in self._steps[1:]:
            rule = self._rules[step.index]
            if step.index in needed:
                state = rule.shared_state(step, [activations[i] for i in step.inputs], activations[step.index])
                if state is not None:
                    states[step.index] = state
        return states

    @staticmethod
    def _rows_of_samples(x, k: int):
        """Row r of a batch with ``k`` vectors per sample belongs to sample r // k."""
        return tf.range(tf.shape(x)[0] * k) // k

    @staticmethod
    def _repeat_per_sample_reference(reference, rows):
        """The reference batch for the sample ``rows`` (a shared one stays batch 1)."""
        return tf.cond(tf.shape(reference)[0] > 1, lambda: tf.gather(reference, rows), lambda: reference)
