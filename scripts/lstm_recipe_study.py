"""Why does the thesis' LSTM recipe reach 97.23% in PyTorch after 2 epochs but less in Keras?

Trains the thesis' classifier (``architectures.models.lstm_classifier``: two LSTM(10) over the 28
rows of an MNIST image, Dense(10) logits) with variants of the thesis recipe (Adam lr 0.01, batch 100,
cross-entropy) and reports the MNIST test accuracy after selected epochs, per configuration and seed.
Each configuration changes one or more of the factors that differ between ``torch.nn.LSTM`` +
``torch.optim.Adam`` and ``keras.layers.LSTM`` + ``keras.optimizers.Adam``:

* ``init``: ``keras`` (Glorot input kernel, orthogonal recurrent kernel, zero bias with forget-gate
  bias 1), ``pytorch`` (everything U(+-1/sqrt(h)), bias = sum of two such uniforms, no forget bias 1),
  ``keras-nofb`` (Keras init with the forget-gate bias set to 0), ``pytorch-fb`` (PyTorch init plus 1
  on the forget-gate bias).
* ``bias_lr``: learning-rate multiplier of the LSTM biases. torch.nn.LSTM has two bias vectors
  (b_ih, b_hh) that always get the same gradient, so Adam moves both by the same step and their sum
  moves twice as far: exactly one bias with twice the learning rate. ``bias_lr=2`` emulates that.
* ``eps``: Adam epsilon (thesis/PyTorch 1e-8, Keras default 1e-7).
* ``adam``: ``keras`` (Keras' Adam: epsilon added to sqrt(v) before bias correction) or ``torch``
  (PyTorch's Adam: epsilon added after bias correction).
* ``decay``: ``none`` (constant lr, as the thesis), ``cosine`` (cosine decay from lr to ``lr_final``
  over the run) or ``last`` (``lr_final`` for the last ``decay_epochs`` epochs).
* ``lr``, ``batch``, ``train`` (number of training images; 52000 = the thesis' 8,000-image validation
  split held out), ``clipnorm`` (gradient clipping per variable; 0 = none), ``epochs``.

Configurations are named presets (see ``--list``) or inline specs such as
``mine:init=pytorch,bias_lr=2,eps=1e-8``. The test accuracy is measured after every epoch listed in
``--eval-epochs`` (default: every epoch) of one run, which equals separate runs of that many epochs
when the learning rate is constant (the evaluation draws no random numbers); with ``decay`` only the
last epoch is a finished schedule. Training time excludes this evaluation.

Plain configurations (Keras Adam, bias_lr 1, no clipping) train with ``architectures.training.fit``;
the others with the same data pipeline and seeding but a custom Adam (see ``StudyAdam``).

Writes one CSV row per (configuration, seed, evaluated epoch) and prints a summary table
(mean / min / max test accuracy over seeds, training seconds per run).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

from architectures import data, models, training  # noqa: E402

HIDDEN = 10
INITS = ("keras", "pytorch", "keras-nofb", "pytorch-fb")


@dataclass(frozen=True)
class Config:
    name: str
    init: str = "keras"
    eps: float = 1e-8
    lr: float = 0.01
    bias_lr: float = 1.0
    adam: str = "keras"
    batch: int = 100
    train: int = 60000
    clipnorm: float = 0.0
    decay: str = "none"  # "none", "cosine" (lr -> lr_final over the run) or "last" (lr_final in the last epochs)
    lr_final: float = 0.001
    decay_epochs: int = 1  # "last": how many final epochs use lr_final
    epochs: int | None = None  # None: --epochs
    spec: str = field(default="", compare=False)

    @property
    def custom_optimizer(self) -> bool:
        return self.adam != "keras" or self.bias_lr != 1.0 or self.clipnorm > 0 or self.decay != "none"


PRESETS = {
    # (a) initialisation, with the thesis' epsilon
    "keras": "init=keras,eps=1e-8",
    "pytorch": "init=pytorch,eps=1e-8",
    "keras-nofb": "init=keras-nofb,eps=1e-8",
    "pytorch-fb": "init=pytorch-fb,eps=1e-8",
    # (c) Keras' default epsilon
    "keras-eps7": "init=keras,eps=1e-7",
    "pytorch-eps7": "init=pytorch,eps=1e-7",
    # (b) two bias vectors = LSTM bias learning rate x2
    "keras-bias2": "init=keras,eps=1e-8,bias_lr=2",
    "pytorch-bias2": "init=pytorch,eps=1e-8,bias_lr=2",
    # everything PyTorch does: init, two biases, PyTorch's Adam epsilon placement
    "torch": "init=pytorch,eps=1e-8,bias_lr=2,adam=torch",
    "torch-keras-adam": "init=pytorch,eps=1e-8,bias_lr=2,adam=keras",
    # (d) the thesis' 8,000-image validation split held out of training
    "torch-52k": "init=pytorch,eps=1e-8,bias_lr=2,adam=torch,train=52000",
    "keras-52k": "init=keras,eps=1e-8,train=52000",
    # gradient clipping (not in the thesis; a common RNN habit)
    "keras-clip1": "init=keras,eps=1e-8,clipnorm=1",
    # learning-rate variants for a cheap cached default
    "keras-lr005": "init=keras,eps=1e-8,lr=0.005",
    "keras-lr02": "init=keras,eps=1e-8,lr=0.02",
    # learning-rate decay (needs a schedule; Recipe has none today)
    "keras-cosine": "init=keras,eps=1e-8,decay=cosine,lr_final=0.0005",
    "keras-last": "init=keras,eps=1e-8,decay=last,lr_final=0.001,decay_epochs=1",
}


def parse_config(text: str) -> Config:
    """A preset name, or ``[name:]key=value,key=value`` (keys: the fields of :class:`Config`)."""
    text = text.strip()
    if text in PRESETS:
        name, spec = text, PRESETS[text]
    elif "=" in text:
        name, _, spec = text.rpartition(":") if ":" in text else (text, "", text)
    else:
        raise SystemExit(f"unknown configuration {text!r}; presets: {', '.join(PRESETS)}")
    types = {"init": str, "adam": str, "eps": float, "lr": float, "bias_lr": float, "batch": int,
             "train": int, "clipnorm": float, "decay": str, "lr_final": float, "decay_epochs": int,
             "epochs": int}
    values = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in types:
            raise SystemExit(f"{text!r}: unknown key {key!r}; allowed: {', '.join(types)}")
        values[key] = types[key](value.strip())
    config = Config(name=name, spec=spec, **values)
    if config.init not in INITS:
        raise SystemExit(f"{text!r}: init must be one of {INITS}")
    if config.adam not in ("keras", "torch"):
        raise SystemExit(f"{text!r}: adam must be 'keras' or 'torch'")
    if config.decay not in ("none", "cosine", "last"):
        raise SystemExit(f"{text!r}: decay must be 'none', 'cosine' or 'last'")
    return config


# ------------------------------------------------------------------------------------------ optimizer
class StudyAdam(keras.optimizers.Adam):
    """Adam with a learning-rate multiplier for the LSTM biases and a choice of epsilon placement.

    ``torch_epsilon=False`` is Keras' update ``lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)``;
    ``True`` is PyTorch's ``lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)``. With multiplier 1 and
    ``torch_epsilon=False`` this is Keras' Adam, step for step.
    """

    def __init__(self, bias_lr: float = 1.0, torch_epsilon: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.bias_lr = float(bias_lr)
        self.torch_epsilon = bool(torch_epsilon)
        self.moments = None  # variable key -> (m, v)

    def build(self, var_list):
        super().build(var_list)
        if self.moments is None:  # Keras 2 calls build at every step
            # Our own slots: Adam keeps its own in private attributes that differ between Keras 2 and 3.
            self.moments = {_variable_key(v): (self.add_variable_from_reference(v, "study_m"),
                                               self.add_variable_from_reference(v, "study_v")) for v in var_list}
            if len(self.moments) != len(var_list):
                raise ValueError(f"variable names are not unique: {sorted(map(_variable_key, var_list))}")

    def _multiplier(self, variable) -> float:
        *scopes, name = _variable_key(variable).split("/")  # Keras 3 adds the model's name in front
        return self.bias_lr if ("lstm_cell" in scopes and name.startswith("bias")) else 1.0

    def update_step(self, gradient, variable, learning_rate=None):  # Keras 3 passes the current rate
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate if learning_rate is None else learning_rate, dtype) * self._multiplier(variable)
        step = tf.cast(self.iterations + 1, dtype)
        correction1 = 1 - tf.pow(tf.cast(self.beta_1, dtype), step)
        correction2 = 1 - tf.pow(tf.cast(self.beta_2, dtype), step)
        m, v = self.moments[_variable_key(variable)]
        gradient = tf.convert_to_tensor(gradient)
        m.assign_add((gradient - m) * (1 - self.beta_1))
        v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
        if self.torch_epsilon:
            variable.assign_sub((lr / correction1) * m / (tf.sqrt(v) / tf.sqrt(correction2) + self.epsilon))
        else:
            alpha = lr * tf.sqrt(correction2) / correction1
            variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "bias_lr": self.bias_lr, "torch_epsilon": self.torch_epsilon}


def _variable_key(variable) -> str:
    """The name of the TensorFlow variable behind ``variable`` ('lstm1/lstm_cell/bias:0'): ``update_step``
    gets that variable on both Kerases, ``build`` gets Keras 3's wrapper of it (its ``value``)."""
    if not isinstance(variable, tf.Variable):
        variable = variable.value
    return variable.name


# ---------------------------------------------------------------------------------------------- model
def build_model(config: Config, seed: int) -> keras.Model:
    """The thesis classifier from ``architectures.models``, seeded like ``architectures.zoo``."""
    keras.utils.set_random_seed(seed)
    model = models.lstm_classifier(hidden_size=HIDDEN, pytorch_style=config.init.startswith("pytorch"))
    if config.init in ("keras-nofb", "pytorch-fb"):
        for layer in model.layers:
            if isinstance(layer, keras.layers.LSTM):
                bias = layer.cell.bias.numpy()
                forget = slice(HIDDEN, 2 * HIDDEN)  # Keras gate order: i, f, c, o
                bias[forget] = 0.0 if config.init == "keras-nofb" else bias[forget] + 1.0
                layer.cell.bias.assign(bias)
    return model


def recipe_of(config: Config, epochs: int) -> training.Recipe:
    return training.Recipe(name=config.name, epochs=epochs, batch_size=config.batch,
                           learning_rate=config.lr, adam_epsilon=config.eps,
                           init="pytorch" if config.init.startswith("pytorch") else "keras",
                           description=config.spec)


class EpochEvaluator(keras.callbacks.Callback):
    """Test accuracy after chosen epochs; training seconds exclude the evaluation itself."""

    def __init__(self, x_test, y_test, epochs_to_eval):
        super().__init__()
        self.x_test, self.y_test, self.epochs_to_eval = x_test, y_test, set(epochs_to_eval)
        self.train_seconds = 0.0
        self.results = []  # (epoch, cumulative train seconds, test accuracy, train loss, train accuracy)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self._started
        logs = logs or {}
        if epoch + 1 in self.epochs_to_eval:
            acc = training.accuracy(self.model, self.x_test, self.y_test)
            self.results.append((epoch + 1, self.train_seconds, acc, logs.get("loss"), logs.get("accuracy")))


def learning_rate(config: Config, epochs: int, steps_per_epoch: int):
    """A float, or a per-step schedule when ``config.decay`` asks for one."""
    if config.decay == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=epochs * steps_per_epoch,
                                                      alpha=config.lr_final / config.lr)
    if config.decay == "last":
        boundary = max(epochs - config.decay_epochs, 0) * steps_per_epoch
        return keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [config.lr, config.lr_final])
    return config.lr


def train_one(config: Config, seed: int, epochs: int, eval_epochs, x_train, y_train, x_test, y_test,
              verbose: int):
    if config.train < len(x_train):  # the thesis' validation split: drop random training images
        keep = np.sort(np.random.default_rng(seed).permutation(len(x_train))[: config.train])
        x_train, y_train = x_train[keep], y_train[keep]
    model = build_model(config, seed)
    recipe = recipe_of(config, epochs)
    evaluator = EpochEvaluator(x_test, y_test, [e for e in eval_epochs if e <= epochs] or [epochs])
    if not config.custom_optimizer:
        training.fit(model, x_train, y_train, recipe, seed=seed, from_logits=True, verbose=verbose,
                     callbacks=[evaluator])
    else:  # training.fit's steps, with StudyAdam
        keras.utils.set_random_seed(seed)
        optimizer = StudyAdam(bias_lr=config.bias_lr, torch_epsilon=config.adam == "torch",
                              learning_rate=learning_rate(config, epochs, -(-len(x_train) // config.batch)),
                              epsilon=config.eps,
                              **({"clipnorm": config.clipnorm} if config.clipnorm > 0 else {}))
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(training.shuffled_batches(x_train, y_train, recipe, seed), epochs=epochs, verbose=verbose,
                  callbacks=[evaluator])
    return evaluator.results


# ------------------------------------------------------------------------------------------ reporting
def summarize(rows, target: float):
    groups = {}
    for row in rows:
        groups.setdefault((row["config"], int(row["epoch"])), []).append(row)
    lines = [f"{'config':18s} {'epoch':>5s} {'n':>2s} {'mean%':>7s} {'min%':>7s} {'max%':>7s} "
             f"{'>=' + format(100 * target, 'g') + '%':>6s} {'train s':>8s}  spec"]
    for (name, epoch), group in groups.items():
        acc = np.array([float(r["test_accuracy"]) for r in group])
        secs = np.array([float(r["train_seconds"]) for r in group])
        lines.append(f"{name:18s} {epoch:5d} {len(acc):2d} {100 * acc.mean():7.2f} {100 * acc.min():7.2f} "
                     f"{100 * acc.max():7.2f} {int(np.sum(acc >= target)):>3d}/{len(acc):<2d} "
                     f"{secs.mean():8.1f}  {group[0]['spec']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="keras pytorch keras-eps7 pytorch-bias2 torch",
                        help="presets or inline specs, separated by spaces or ';' (inline specs use "
                             "commas between their keys) (default: %(default)s)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run unless a config sets epochs= "
                                                               "(default: %(default)s)")
    parser.add_argument("--eval-epochs", default="",
                        help="comma-separated epochs after which to measure test accuracy (default: all)")
    parser.add_argument("--target", type=float, default=0.97, help="accuracy counted as reached (default 0.97)")
    parser.add_argument("--out", default="results/lstm_recipe_study.csv", help="CSV file (default: %(default)s)")
    parser.add_argument("--append", action="store_true", help="append to the CSV instead of overwriting it")
    parser.add_argument("--verbose", type=int, default=0, help="Keras fit verbosity (default 0)")
    parser.add_argument("--list", action="store_true", help="print the presets and exit")
    parser.add_argument("--summarize", nargs="+", metavar="CSV",
                        help="print the table of existing CSV files (from earlier runs) and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in PRESETS.items():
            print(f"{name:18s} {spec}")
        return 0
    if args.summarize:
        rows = []
        for path in args.summarize:
            with open(path, newline="") as handle:
                rows.extend(csv.DictReader(handle))
        print(summarize(rows, args.target))
        return 0

    configs = [parse_config(c) for c in args.configs.replace(";", " ").split()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    splits = data.mnist()
    x_train, y_train = training.rows_sequence(splits.train.images), splits.train.labels
    x_test, y_test = training.rows_sequence(splits.test.images), splits.test.labels

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["config", "spec", "seed", "epoch", "test_accuracy", "train_seconds", "train_loss",
              "train_accuracy", "tensorflow"]
    new_file = not (args.append and out.exists())
    rows = []
    with open(out, "w" if new_file else "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new_file:
            writer.writeheader()
        for config in configs:
            epochs = config.epochs or args.epochs
            eval_epochs = ([int(e) for e in args.eval_epochs.split(",") if e.strip()]
                           or list(range(1, epochs + 1)))
            for seed in seeds:
                results = train_one(config, seed, epochs, eval_epochs, x_train, y_train, x_test, y_test,
                                    args.verbose)
                for epoch, seconds, acc, loss, train_acc in results:
                    row = {"config": config.name, "spec": config.spec, "seed": seed, "epoch": epoch,
                           "test_accuracy": f"{acc:.4f}", "train_seconds": f"{seconds:.1f}",
                           "train_loss": f"{loss:.4f}" if loss is not None else "",
                           "train_accuracy": f"{train_acc:.4f}" if train_acc is not None else "",
                           "tensorflow": tf.__version__}
                    rows.append(row)
                    writer.writerow(row)
                handle.flush()
                print(f"{config.name:18s} seed {seed}: "
                      + "  ".join(f"ep{e} {100 * a:.2f}%" for e, _, a, _, _ in results)
                      + f"  ({results[-1][1]:.0f} s)", flush=True)
    print()
    print(summarize(rows, args.target))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
