"""What ``python -m sanity`` runs: each experiment of the paper on a set-up, written as JSON/CSV (every
number behind every figure), PNG figures and report.md. The command line is :mod:`sanity.cli`."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from architectures.cache import atomic_write_text
from keras_xai import graph

from . import csc_experiment, csc_training, experiment_inputs, experiments, methods, pattern_svd, plots, report, simulation
from .setups import build_setup

#: The experiments, in the order "all" runs them.
EXPERIMENTS = ("random-logit", "cascading", "csc", "two-classes", "simulate", "pattern-svd")
#: What "all" runs on the thesis' LSTM: the simulation does not depend on the model, and an LSTM has no
#: patterns to decompose.
LSTM_EXPERIMENTS = ("random-logit", "cascading", "csc", "two-classes")
PAPER_NOTES = [
    "Normalisation for SSIM clips to the [0.5, 99.5] percentiles (RectGrad [0, 100]); the authors' code "
    "swapped the two percentiles, which yields 1 minus the intended map. We do the intended thing.",
    "Images are scaled to [0, 1] before they reach the analyzers (the authors' code skipped this for the "
    "CIFAR-10 analyses).",
    "Maps explain the pre-softmax logit of the true class; random logit draws another class uniformly.",
    "CSC medians and percentiles are read from per-image histograms of -log10(1 - |cos|) in steps of 0.02 "
    "(5% relative resolution in 1 - |cos|), which keeps results per image small and runs resumable.",
    "The simulation leaves out the diagonal (each vector with itself) that the authors' notebook averaged in.",
    "DeepLIFT ablation: the decoupled chains of the paper's section 5 (positive multipliers only through W+, "
    "negative ones only through W-, for every input of a linear layer).",
]


def _write_csv(path: Path, header: list, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _write_json(path: Path, payload) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, default=_jsonable))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _described(setup) -> dict:
    """The model, its weights and the images (with content hashes), for every JSON summary."""
    return {"model": setup.description, **setup.provenance}


def _converging(specs) -> list:
    return [spec.label for spec in specs if spec.converges]


def run_random_logit(setup, specs, args, out: Path) -> None:
    result = experiments.random_logit(setup.model, setup.inputs, specs, seed=args.seed, out=out / "per_image",
                                      engine=args.engine, chunk_size=args.chunk_size, progress=not args.quiet,
                                      overwrite=args.overwrite)
    summary = experiments.summarize_ssim(result.ssim, seed=args.seed)
    _write_json(out / "random_logit.json", {"methods": result.methods, **summary, "n_images": len(result.indices),
                                            "converging_methods": _converging(specs), **_described(setup)})
    _write_csv(out / "random_logit.csv", ["image_index", "true_class", "random_class", *result.methods],
               [[i, t, r, *row] for i, t, r, row in zip(result.indices, result.true_class, result.random_class, result.ssim)])
    converges = {s.label: s.converges for s in specs}
    plots.random_logit_boxplot(result.methods, result.ssim, converges, out / "random_logit.png",
                               f"Random logit: {setup.description}, {len(result.indices)} images")
    true_name = setup.class_names[result.true_class[0]]
    other_name = setup.class_names[result.random_class[0]]
    plots.saliency_grid({m: maps for m, maps in result.examples.items()},
                        [f"true: {true_name}", f"random: {other_name}"], out / "random_logit_examples.png",
                        f"Image {result.indices[0]} explained for two logits", image=setup.display_images[0])


def run_cascading(setup, specs, args, out: Path) -> None:
    result = experiments.cascading_randomization(setup.model, setup.inputs, specs, setup.cascading_steps,
                                                 seed=args.seed, out=out / "per_image", engine=args.engine,
                                                 chunk_size=args.chunk_size, progress=not args.quiet,
                                                 overwrite=args.overwrite)
    summary = experiments.summarize_ssim(result.ssim, seed=args.seed)
    _write_json(out / "cascading.json", {"methods": result.methods, "steps": result.steps, **summary,
                                         "first_conv_step": setup.first_conv_step, "n_images": len(result.indices),
                                         "converging_methods": _converging(specs), **_described(setup)})
    _write_csv(out / "cascading.csv", ["image_index", "method", "step", "ssim"],
               [[index, method, step, result.ssim[i, m, s]] for i, index in enumerate(result.indices)
                for m, method in enumerate(result.methods) for s, step in enumerate(result.steps)])
    converges = {s.label: s.converges for s in specs}
    plots.cascading_curves(result.methods, result.steps, summary, converges, out / "cascading.png",
                           f"Cascading randomization: {setup.description}, {len(result.indices)} images")
    plots.saliency_grid(result.examples, ["original", *result.steps], out / "cascading_maps.png",
                        f"Saliency maps of image {result.indices[0]} while layers are randomized (top down)",
                        image=setup.display_images[0])


def run_csc(setup, specs, args, out: Path) -> None:
    specs = [spec for spec in specs if spec.in_csc]
    result = csc_experiment.cosine_similarity_convergence(setup.model, setup.inputs, specs, setup.injection_layers,
                                                          n_vectors=5, seed=args.seed, out=out / "per_image",
                                                          engine=args.engine, most_per_chunk=args.chunk_size,
                                                          progress=not args.quiet, overwrite=args.overwrite,
                                                          per_location_layers=setup.sequence_layers)
    summaries = {m: {k: result.summary(m, k) for k in result.injection_layers} for m in result.methods}
    medians = {m: {k: {layer: s["median"] for layer, s in per_k.items()} for k, per_k in per_m.items()}
               for m, per_m in summaries.items()}
    baselines = result.baselines(seed=args.seed)
    per_step = {m: {k: {layer: result.location_medians(m, k, layer) for layer in setup.sequence_layers}
                    for k in result.injection_layers} for m in result.methods}
    per_step_json = {m: {k: {layer: [None if np.isnan(v) else float(v) for v in values]  # NaN: no pair defined
                             for layer, values in per_k.items()} for k, per_k in per_m.items()}
                     for m, per_m in per_step.items()}
    _write_json(out / "csc.json", {"methods": result.methods, "injection_layers": result.injection_layers,
                                   "layers": result.layers, "first_conv_layer": setup.first_conv_layer,
                                   "medians": medians, "summaries": summaries, "baselines": baselines,
                                   "n_images": result.n_images, "n_vectors": 5,
                                   "converging_methods": _converging(specs), **_described(setup),
                                   **({"median_per_time_step": per_step_json} if setup.sequence_layers else {})})
    _write_csv(out / "csc_medians.csv", ["method", "injection_layer", "layer", "median_abs_cos", "one_minus_median",
                                         "baseline"],
               [[m, k, layer, v, 1 - v, baselines[layer]] for m, per_m in medians.items()
                for k, per_k in per_m.items() for layer, v in per_k.items()])
    converges = {s.label: s.converges for s in specs}
    if setup.sequence_layers:
        _write_csv(out / "csc_time_steps.csv", ["method", "injection_layer", "layer", "time_step", "median_abs_cos",
                                                "one_minus_median"],
                   [[m, k, layer, step + 1, v, 1 - v] for m, per_m in per_step.items() for k, per_k in per_m.items()
                    for layer, values in per_k.items() for step, v in enumerate(values)])
        for k in result.injection_layers:
            reached = {layer: {m: per_step[m][k][layer] for m in result.methods}
                       for layer in setup.sequence_layers
                       if any(not np.isnan(per_step[m][k][layer]).all() for m in result.methods)}
            if reached:
                plots.csc_time_steps(reached, baselines, converges, out / f"csc_time_steps_{k}.png",
                                     f"CSC per time step, vectors injected at {k} ({setup.description}, "
                                     f"{result.n_images} images)")
    for k in result.injection_layers:
        layers = [layer for layer in result.layers if any(layer in medians[m][k] for m in medians)][::-1]
        plots.csc_curves(layers, {m: medians[m][k] for m in medians}, baselines, converges, out / f"csc_{k}.png",
                         f"CSC, random vectors injected at {k} ({setup.description}, {result.n_images} images)")
    top = result.injection_layers[0]
    counts = {m: summaries[m][top][setup.first_conv_layer]["histogram"]["counts"] for m in result.methods
              if setup.first_conv_layer in summaries[m][top]}
    if counts:
        from .csc import HISTOGRAM_BINS
        plots.csc_histograms(HISTOGRAM_BINS, counts, out / f"csc_histogram_{setup.first_conv_layer}.png",
                             f"|cos| at {setup.first_conv_layer}, vectors injected at {top}")


def run_two_classes(setup, specs, args, out: Path) -> None:
    true_class = int(setup.inputs.labels[args.image])
    if args.classes:
        classes = tuple(args.classes)
    else:  # the true class and the model's runner-up, the paper's "cat and dog" in one image
        logits = setup.model(setup.inputs.images[args.image][None]).numpy()[0]
        classes = (true_class, int(next(c for c in np.argsort(-logits) if c != true_class)))
    result = experiments.two_classes(setup.model, setup.inputs, args.image, classes, specs, engine=args.engine)
    _write_json(out / "two_classes.json", {**_described(setup), "image_index": int(setup.inputs.indices[args.image]),
                                           "classes": classes,
                                           "l1_min_max": {m: r["l1_min_max"] for m, r in result.items()},
                                           "l1_sum_normalized": {m: r["l1_sum_normalized"] for m, r in result.items()}})
    plots.two_classes_figure(setup.display_images[args.image], result, classes,
                             [setup.class_names[c] for c in classes], out / "two_classes.png",
                             "One image explained for two classes (difference of the maps scaled to [0, 1])")


def run_simulation(args, out: Path) -> None:
    standard, alpha_beta = simulation.STANDARD_VARIANTS, simulation.alpha_beta_variants()
    from tqdm.auto import tqdm

    curves = simulation.simulate_matrix_chains({**standard, **alpha_beta}, n_repetitions=args.repetitions,
                                               rng=args.seed, progress=lambda r: tqdm(r, desc="matrix chains",
                                                                                      disable=args.quiet))
    summaries = {name: simulation.summarize_curves(c) for name, c in curves.items()}
    labels = {name: v.label for name, v in {**standard, **alpha_beta}.items()}
    _write_json(out / "simulation.json", {"curves": {n: {**s, "label": labels[n]} for n, s in summaries.items()},
                                          "shapes": simulation.VGG16_BACKWARD_SHAPES,
                                          "n_repetitions": args.repetitions, "n_vectors": 32})
    _write_csv(out / "simulation.csv", ["variant", "repetition", "multiplications", "mean_abs_cos"],
               [[n, r, step, v] for n, c in curves.items() for r, row in enumerate(c) for step, v in enumerate(row)])
    plots.simulation_curves({n: summaries[n] for n in standard}, labels, out / "simulation_a.png",
                            "Matrix chains shaped like VGG-16 (paper fig. 8a)")
    plots.simulation_curves({n: summaries[n] for n in alpha_beta}, labels, out / "simulation_b.png",
                            "alpha W+ + beta W- chains (paper fig. 8b)")


def run_pattern_svd(setup, specs, args, out: Path) -> None:
    layers = graph.keras_of(setup.model).layers  # the model's own Keras (2 or 3)
    kernels = {layer.name: layer.kernel.numpy() for layer in setup.model.layers
               if isinstance(layer, (layers.Dense, layers.Conv2D))}
    patterns = experiment_inputs.fitted_patterns(setup.model, setup.inputs, progress=not args.quiet)
    result = pattern_svd.pattern_singular_values(kernels, patterns)
    _write_json(out / "pattern_svd.json", {**result, **_described(setup),
                                           "n_fit_images": None if setup.inputs.fit_images is None
                                           else len(setup.inputs.fit_images)})
    rows = [[panel, name, kind, value] for panel in ("full", "sliced") for kind, values in result[panel].items()
            for name, value in zip(result["layers"], values)]
    rows += [["interlayer", pair, kind, value] for kind, values in result["interlayer"].items()
             for pair, value in zip(result["pairs"], values)]
    _write_csv(out / "pattern_svd.csv", ["panel", "layer", "matrix", "sigma1_over_sigma2"], rows)
    plots.pattern_svd_figure(result, out / "pattern_svd.png",
                             f"PatternAttribution singular values (paper fig. 3): {setup.description}")


def run_csc_training(args, out: Path) -> None:
    specs, _ = methods.available(methods.by_label(list(args.methods) if args.methods else None), args.engine)
    sweep = csc_training.csc_over_training(specs, args.epochs, args.dataset, args.n_images, args.seed, args.n_fit,
                                           args.data_dir, out / "per_image" / "csc_training", args.engine,
                                           args.chunk_size, progress=not args.quiet, overwrite=args.overwrite)
    medians = {m: sweep.medians(m) for m in sweep.methods}
    _write_json(out / "csc_training.json", {"epochs": sweep.epochs, "methods": sweep.methods,
                                            "injection_layer": sweep.injection, "layer": sweep.layer,
                                            "medians": medians, "summaries": sweep.summaries,
                                            "test_accuracy": sweep.test_accuracy, "n_images": sweep.n_images,
                                            "converging_methods": _converging(specs), "runs": sweep.provenance})
    _write_csv(out / "csc_training.csv", csc_training.CSV_HEADER, csc_training.rows(sweep))
    shown = [m for m in csc_training.DISTRIBUTION_METHODS if m in sweep.methods]
    distributions = {m: [csc_training.dissimilarity_density(sweep.fine[e, sweep.methods.index(m)])
                         for e in range(len(sweep.epochs))] for m in shown}
    plots.csc_training_figure(sweep.epochs, medians, {s.label: s.converges for s in specs}, distributions,
                              sweep.layer, out / "csc_training.png",
                              f"CSC at {sweep.layer} (vectors injected at {sweep.injection}) against training, "
                              f"appendix-D net on {args.dataset}, {sweep.n_images} images")


#: Commands that need no set-up of the run's model: the simulation has none, csc-training one per training length.
OWN_SETUP = {"simulate": run_simulation, "csc-training": run_csc_training}


def run(args, out: Path) -> int:
    """Run ``args.command`` (every experiment for "all") into ``out``; 0, or 2 for a --patterns file that does not fit."""
    notes = list(PAPER_NOTES)
    on_lstm = args.model == "lstm_classifier"
    commands = (LSTM_EXPERIMENTS if on_lstm else EXPERIMENTS) if args.command == "all" else (args.command,)
    if not set(commands) <= OWN_SETUP.keys():
        if args.model in ("vgg16", "resnet50") and args.weights is None:
            args.weights = "imagenet"
        specs, missing = methods.available(methods.by_label(list(args.methods) if args.methods else None,
                                                            args.model), args.engine)
        if missing:
            notes.append(f"Not run (not yet offered by the '{args.engine}' engine): "
                         + ", ".join(s.label for s in missing) + ".")
            print("skipping methods the engine does not offer yet: " + ", ".join(s.label for s in missing))
        wants_patterns = "pattern-svd" in commands or any(s.needs_fit for s in specs)
        n_fit = args.n_fit if wants_patterns and args.patterns is None else 0
        setup = build_setup(args.model, args.dataset, args.n_images, args.seed, args.weights, args.data_dir, n_fit,
                            epochs=args.epochs[0] if args.epochs else None)
        specs, refused = methods.explaining(specs, setup.model, setup.inputs.input_range)
        for label, reason in refused.items():
            notes.append(f"Not run: {label} is not defined on this model ({reason}).")
            print(f"skipping {label}: {reason}")
        if not specs:
            print("error: none of the methods asked for is defined on this model", file=sys.stderr)
            return 2
        if args.patterns is not None:
            try:
                experiment_inputs.use_patterns(setup.model, setup.inputs, args.patterns)
            except ValueError as error:  # names the file and the layer or shape that does not fit
                print(f"error: --patterns: {error}", file=sys.stderr)
                return 2
        elif wants_patterns and setup.inputs.fit_images is None:
            no_fit = [s for s in specs if s.needs_fit]
            specs = [s for s in specs if not s.needs_fit]
            commands = tuple(c for c in commands if c != "pattern-svd")
            message = (f"PatternNet/PatternAttribution need patterns and {args.model} has no training images here: "
                       "pass --patterns FILE.npz (saved by keras_xai's PatternAnalyzer.save_patterns); skipped "
                       + ", ".join([s.label for s in no_fit] + ["pattern-svd"]) + ".")
            notes.append(message)
            print(message)
        notes.append(f"Model: {setup.description}; {len(setup.inputs.indices)} test images; engine {args.engine}; "
                     f"seed {args.seed}.")
    runners = {"random-logit": run_random_logit, "cascading": run_cascading, "csc": run_csc,
               "two-classes": run_two_classes, "pattern-svd": run_pattern_svd}
    for command in commands:
        print(f"== {command}", flush=True)
        if command in OWN_SETUP:
            OWN_SETUP[command](args, out)
        else:
            runners[command](setup, specs, args, out)
    if on_lstm:
        path = report.write_lstm_report(out, "When Explanations Lie's sanity checks on the thesis' LSTM classifier",
                                        notes)
    else:
        path = report.write_report(out, "When Explanations Lie: claims and our measurements", notes)
    print(f"wrote results, figures and {path}")
    return 0


