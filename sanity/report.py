"""The paper's claims, what each predicts, what we measured, and whether it reproduced.

Each claim reads the JSON summaries an experiment wrote (``random_logit.json``, ``cascading.json``,
``csc.json``, ``simulation.json``) and is skipped when its experiment has not run or a method it needs
is missing. The thresholds turning the paper's words into numbers are fixed here, before looking at
results, and printed in the report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from architectures.cache import atomic_write_text

# The methods the paper finds class- and parameter-insensitive (figures 4, 5): the z+ family, DTD,
# PatternNet, GuidedBP. LRP-CMP is not among them: its dense layers use epsilon, which keeps some
# sensitivity (paper section 5, figure 7).
CLASS_INSENSITIVE = ("LRP-a1b0", "DTD", "PatternNet", "GuidedBP")
GRADIENT_LIKE = ("Gradient", "LRP-z", "DeepLIFT-Rescale", "DeepLIFT-RevealCancel")
CLOSE_TO_ONE = 0.9  # "SSIM close to 1"
CLEARLY_LOWER = 0.1  # "clearly lower": at least this far below the lowest converging median
KEEPS_HIGH, DROPS = 0.7, 0.5  # cascading: median SSIM after the top conv layer is randomized


@dataclass
class Claim:
    experiment: str
    claim: str
    prediction: str
    measured: str
    reproduced: bool | None  # None: could not be checked (missing method or experiment)
    explanation: str = ""  # for a claim not reproduced: what a measured control shows (empty: none run)


def _load(folder: Path, name: str):
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _training_lengths(training, methods) -> str:
    """``method: 1 - median`` per training length of the sweep (csc_training.json), for explanations."""
    return "; ".join(f"{m}: " + ", ".join(f"{_fmt(1 - v)} ({e} ep.)" for e, v in zip(training["epochs"],
                                                                                    training["medians"][m]))
                     for m in methods)


def _csc_explanations(claims: list, summary, training) -> None:
    """Fill the explanations of the CSC claims not reproduced from the training sweep, where it ran at the
    same layers (``python -m sanity csc-training``)."""
    if training is None or training["layer"] != summary["first_conv_layer"]:
        return
    at = f"1 - median abs(cos) at {training['layer']} by training length (csc_training.json, {training['n_images']} images)"
    swept = set(training["methods"])
    for claim in claims:
        if claim.reproduced is not False:
            continue
        if claim.claim.startswith("LRP alpha1beta0") and "LRP-a1b0" in swept:
            claim.explanation = f"Training moves it: {at}: {_training_lengths(training, ['LRP-a1b0'])}."
        elif claim.claim.startswith("the other modified-BP") and training["epochs"][0] == 0:
            rest = [m for m in training["methods"] if m in summary["converging_methods"] and m != "LRP-a1b0"]
            if rest:
                initial = [m for m in rest if training["medians"][m][0] >= 0.99]
                claim.explanation = (f"Untrained, {len(initial)} of {len(rest)} reach 0.99 ({at}: "
                                     f"{_training_lengths(training, rest)}).")


def _csc_claims(summary) -> list:
    first, top = summary["first_conv_layer"], summary["injection_layers"][0]
    medians = {m: summary["medians"][m][top].get(first) for m in summary["methods"]}
    converging = set(summary["converging_methods"])
    claims = []
    a1b0 = medians.get("LRP-a1b0")
    claims.append(Claim("CSC", f"LRP alpha1beta0 converges on the small net (injection {top}, layer {first})",
                        "median CSC > 1 - 1e-6", f"median CSC = 1 - {_fmt(None if a1b0 is None else 1 - a1b0)}",
                        None if a1b0 is None else a1b0 > 1 - 1e-6))
    for method in GRADIENT_LIKE:
        if method in medians:
            value = medians[method]
            claims.append(Claim("CSC", f"{method} does not converge", f"median CSC at {first} < 0.99",
                                f"{_fmt(value)} (random baseline {_fmt(summary['baselines'].get(first))})",
                                value < 0.99))
    rest = [m for m in summary["methods"] if m in converging and m != "LRP-a1b0"]
    if rest:
        below = sorted((m for m in rest if medians[m] < 0.99), key=lambda m: medians[m])
        measured = ("below 0.99: " + ", ".join(f"{m} {_fmt(medians[m])}" for m in below)) if below else \
            f"lowest: {min(rest, key=lambda m: medians[m])} {_fmt(min(medians[m] for m in rest))}"
        claims.append(Claim("CSC", "the other modified-BP methods converge", f"median CSC at {first} >= 0.99 for "
                            + ", ".join(rest), measured, not below))
    return claims


def _random_logit_claims(summary) -> list:
    medians = dict(zip(summary["methods"], summary["median"]))
    converging = [m for m in CLASS_INSENSITIVE if m in medians]
    gradient_like = [m for m in GRADIENT_LIKE if m in medians]
    claims = []
    if converging:
        low = min(converging, key=medians.get)
        claims.append(Claim("random logit", "converging methods give the same map for any logit",
                            f"median SSIM >= {CLOSE_TO_ONE} for " + ", ".join(converging),
                            f"lowest: {low} {_fmt(medians[low])}", medians[low] >= CLOSE_TO_ONE))
    if converging and gradient_like:
        floor = min(medians[m] for m in converging)
        high = max(gradient_like, key=medians.get)
        claims.append(Claim("random logit", "gradient, LRP-z and DeepLIFT are class sensitive",
                            f"median SSIM at least {CLEARLY_LOWER} below every converging method ({_fmt(floor)})",
                            f"highest: {high} {_fmt(medians[high])}", medians[high] <= floor - CLEARLY_LOWER))
    return claims


def _cascading_claims(summary) -> list:
    step = summary["first_conv_step"]
    column = summary["steps"].index(step)
    medians = {m: summary["median"][i][column] for i, m in enumerate(summary["methods"])}
    converging = [m for m in CLASS_INSENSITIVE if m in medians]
    gradient_like = [m for m in GRADIENT_LIKE if m in medians and m != "LRP-z"]
    claims = []
    if converging:
        low = min(converging, key=medians.get)
        claims.append(Claim("cascading", f"converging methods ignore randomized layers (down to {step})",
                            f"median SSIM >= {KEEPS_HIGH}", f"lowest: {low} {_fmt(medians[low])}",
                            medians[low] >= KEEPS_HIGH))
    if gradient_like:
        high = max(gradient_like, key=medians.get)
        claims.append(Claim("cascading", f"gradient and DeepLIFT change (down to {step})",
                            f"median SSIM <= {DROPS} for " + ", ".join(gradient_like),
                            f"highest: {high} {_fmt(medians[high])}", medians[high] <= DROPS))
    return claims


def _simulation_claims(summary) -> list:
    gap = {name: [1 - v for v in curve["median"]] for name, curve in summary["curves"].items()}
    claims = []
    for name in ("positive", "non_negative"):
        if name in gap:
            reached = next((i for i, g in enumerate(gap[name]) if g < 1e-6), None)
            claims.append(Claim("simulation", f"{name} chains converge exponentially",
                                "1 - cos < 1e-6 within about 7 products (<= 8)",
                                f"after {reached} products" if reached is not None else "never",
                                reached is not None and reached <= 8))
    if "vanilla" in gap:
        smallest = min(gap["vanilla"][1:-1])
        claims.append(Claim("simulation", "Gaussian chains do not converge", "1 - cos > 0.1 throughout",
                            f"min 1 - cos = {_fmt(smallest)}", smallest > 0.1))
    alpha_beta = {name: g for name, g in gap.items() if name.startswith("alpha_")}
    if alpha_beta:
        beta_of = {name: float(name.split("_")[-1]) for name in alpha_beta}
        small = [n for n in alpha_beta if beta_of[n] < 4]
        large = [n for n in alpha_beta if beta_of[n] >= 4]
        end = {n: alpha_beta[n][-2] for n in alpha_beta}  # before the 3-channel input step
        claims.append(Claim("simulation", "alpha W+ + beta W- chains converge for beta < 4",
                            "1 - cos < 1e-6 at the end for beta < 4; larger for beta >= 4",
                            ", ".join(f"{n}: {_fmt(end[n])}" for n in sorted(alpha_beta, key=beta_of.get)),
                            all(end[n] < 1e-6 for n in small) and all(end[n] > 1e-6 for n in large)))
    return claims


PATTERN_RATIO = 6.0  # "sigma1(A)/sigma2(A) > 6 for almost all the VGG-16 patterns" (section 4)


def _pattern_svd_claims(summary) -> list:
    layers = summary["layers"]
    pattern_ratios = summary["full"]["A"]
    above = [name for name, r in zip(layers, pattern_ratios) if r > PATTERN_RATIO]
    claims = [Claim("pattern-svd", "patterns A have one dominant direction (fig. 3a; the paper measured VGG-16)",
                    f"sigma1/sigma2 of A > {PATTERN_RATIO:g} for all layers but at most one",
                    f"{len(above)} of {len(layers)} layers (" + ", ".join(f"{n}: {_fmt(r)}" for n, r in
                                                              zip(layers, pattern_ratios)) + ")",
                    len(above) >= len(layers) - 1)]
    sliced_w, sliced_aw = summary["sliced"]["W"], summary["sliced"]["A*W"]
    larger = [name for name, w, aw in zip(layers, sliced_w, sliced_aw) if aw > w]
    claims.append(Claim("pattern-svd", "A (.) W has a larger sigma1/sigma2 than W (fig. 3b, 1x1 slices)",
                        "true for most layers (more than half)", f"{len(larger)} of {len(layers)} layers",
                        2 * len(larger) > len(layers)))
    return claims


def undefined_notes(folder) -> list:
    """One note per method with undefined SSIM values (constant maps), so no image goes uncounted."""
    notes = []
    for name in ("random_logit", "cascading"):
        summary = _load(Path(folder), name)
        if summary is None or "n_undefined" not in summary:
            continue
        for method, count in zip(summary["methods"], summary["n_undefined"]):
            total = count if isinstance(count, int) else sum(count)
            if total:
                notes.append(f"{name}: {method} gave a constant (all-zero) map in {count} case(s) of "
                             f"{summary['n_images']} images; SSIM is undefined there and left out of the median. "
                             "DTD's ReLU head zeroes the relevance of a negative logit (as in iNNvestigate).")
    return notes


EXPERIMENTS = ("random_logit", "cascading", "csc", "two_classes", "pattern_svd")


def provenance_lines(folder) -> list:
    """Which weights and images each experiment's numbers come from (file, SHA-256, content hashes)."""
    rows = []
    for name in EXPERIMENTS:
        summary = _load(Path(folder), name)
        if summary is None or "weights" not in summary:
            continue
        weights, data = summary["weights"], summary["data"]
        file = f"`{weights['file']}` (SHA-256 {weights['file_sha256']})" if weights.get("file") else "-"
        rows.append(f"| {name} | {summary.get('model', '')} | {weights['source']} | {file} | "
                    f"{weights['content_digest']} | {data['dataset']}, {data['n_images']} images | "
                    f"{data['content_digest']} |")
    if not rows:
        return []
    return ["## Weights and data", "", "| experiment | model | weights | weights file | weights content hash | "
            "images | images content hash |", "| --- | --- | --- | --- | --- | --- | --- |", *rows, ""]


def collect_claims(folder) -> list:
    folder = Path(folder)
    claims = []
    for name, build in (("csc", _csc_claims), ("random_logit", _random_logit_claims),
                        ("cascading", _cascading_claims), ("simulation", _simulation_claims),
                        ("pattern_svd", _pattern_svd_claims)):
        summary = _load(folder, name)
        if summary is not None:
            built = build(summary)
            if name == "csc":
                _csc_explanations(built, summary, _load(folder, "csc_training"))
            claims.extend(built)
    return claims


# --- the same checks on the thesis' LSTM (issue 18): no published claim, the paper's criteria per method ---
CONVERGED_CSC = 0.99  # "converge to >= 0.99" (the paper's CSC threshold, as in _csc_claims)


def _at_least(value, threshold):
    """``value >= threshold``, None where the value is missing or undefined (NaN)."""
    return None if value is None or value != value else value >= threshold


def _lstm_rows(folder: Path) -> tuple:
    """(table lines, {method: (checks finding it ignoring later layers, checks it was in)}) from the JSON."""
    random_logit, cascading, csc = (_load(folder, name) for name in ("random_logit", "cascading", "csc"))
    methods = list(dict.fromkeys(m for s in (random_logit, cascading, csc) if s is not None for m in s["methods"]))
    header = ["method"]
    checks = []  # (name, {method: (shown value, ignores later layers? None: undefined)})
    if random_logit is not None:
        median = dict(zip(random_logit["methods"], random_logit["median"]))
        header.append(f"random logit: median SSIM (>= {CLOSE_TO_ONE} ignores the logit)")
        checks.append(("random logit", {m: (_fmt(v), _at_least(v, CLOSE_TO_ONE)) for m, v in median.items()}))
    if cascading is not None:
        steps, step = cascading["steps"], cascading["first_conv_step"]
        column = steps.index(step)
        header.append("cascading: median SSIM after randomizing down to " + " / ".join(steps)
                      + f" (>= {KEEPS_HIGH} down to {step} ignores them)")
        checks.append(("cascading", {m: (" / ".join(_fmt(v) for v in cascading["median"][i]),
                                         _at_least(cascading["median"][i][column], KEEPS_HIGH))
                                     for i, m in enumerate(cascading["methods"])}))
    if csc is not None:
        top, first = csc["injection_layers"][0], csc["first_conv_layer"]
        reached = {m: csc["medians"][m][top] for m in csc["methods"]}
        below = [layer for layer in csc["layers"][::-1] if layer != top and any(layer in r for r in reached.values())]
        header.append(f"CSC: 1 - median abs(cos), injected at {top}, at " + " / ".join(below)
                      + f" (<= {1 - CONVERGED_CSC:.2g} at {first} converges)")
        checks.append(("CSC", {m: (" / ".join(_fmt(None if reached[m].get(layer) is None else 1 - reached[m][layer])
                                              for layer in below),
                                   _at_least(reached[m].get(first), CONVERGED_CSC)) for m in csc["methods"]}))
    shown = {True: "**ignores**", False: "sensitive", None: "undefined"}
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    verdicts = {m: ([name for name, values in checks if m in values and values[m][1]],
                    sum(m in values and values[m][1] is not None for _, values in checks)) for m in methods}
    for m in methods:
        cells = [f"{values[m][0]} ({shown[values[m][1]]})" if m in values else "n/a" for _, values in checks]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines, verdicts


def _lstm_answer(verdicts: dict) -> str:
    """The measured answer to "does LRP for LSTMs ignore later layers?", in one paragraph."""
    def verdict(method):
        found, run = verdicts[method]
        return f"{method}: {len(found)} of {run} checks" + (f" ({', '.join(found)})" if found else "")
    lrp = [m for m in verdicts if m.startswith("LRP") and verdicts[m][1]]
    others = [m for m in verdicts if m not in lrp]
    if not lrp:
        answer = "not measured (no LRP method ran)"
    elif all(len(verdicts[m][0]) == verdicts[m][1] for m in lrp):  # every check, every LRP method
        answer = "yes"
    else:
        answer = "partly" if any(verdicts[m][0] for m in lrp) else "no"
    return (f"**Does LRP for LSTMs ignore later layers? Measured: {answer}.** Checks finding a method "
            f"ignoring later layers: " + "; ".join(verdict(m) for m in lrp + others) + ".")


def _time_step_lines(csc) -> list:
    """Where along the first LSTM layer's time steps each method's vectors (injected at the top) came
    closest to converging, and how far they were at the last step."""
    if csc is None or "median_per_time_step" not in csc:
        return []
    top, layer = csc["injection_layers"][0], csc["first_conv_layer"]
    parts = []
    for method, per_injection in csc["median_per_time_step"].items():
        gaps = [None if v is None or v != v else 1 - v for v in per_injection[top].get(layer, [])]
        finite = [(gap, step) for step, gap in enumerate(gaps, 1) if gap is not None]  # None: no pair defined
        if finite:
            gap, step = min(finite)
            parts.append(f"{method} {_fmt(gap)} at step {step} (last step {_fmt(gaps[-1])})")
    if not parts:
        return []
    return [f"Per time step of {layer} (csc_time_steps.csv, csc_time_steps_{top}.png), the smallest 1 - median "
            "abs(cos): " + "; ".join(parts) + ".", ""]


def _write_with_provenance_and_notes(folder: Path, lines: list, notes) -> Path:
    """``report.md``: ``lines``, then the weights and data of every experiment, then the notes."""
    lines = lines + provenance_lines(folder)
    notes = list(notes or []) + undefined_notes(folder)
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def write_lstm_report(folder, title: str, notes: list | None = None) -> Path:
    """``report.md`` of the sanity checks on the LSTM classifier: per method, what each check measured and
    whether it finds the method ignoring later layers, by the paper's thresholds fixed here beforehand."""
    folder = Path(folder)
    lines = [f"# {title}", "",
             "Nobody has published these checks on an LSTM (the paper ran CNNs only). Each check uses the paper's "
             "threshold, fixed before the run: a method *ignores later layers* in a check when its random-logit "
             f"median SSIM is >= {CLOSE_TO_ONE}, when its median SSIM after randomizing the layers down to the "
             f"top LSTM is >= {KEEPS_HIGH}, or when its vectors injected at the logits converge (median abs(cos) >= "
             f"{CONVERGED_CSC}) at the first LSTM layer. LRP for LSTMs is Arras et al.'s signal-take-all rule "
             "(gates get no relevance) with the method's z or epsilon rule on the linear parts.", ""]
    if not any((folder / f"{name}.json").exists() for name in ("random_logit", "cascading", "csc")):
        lines += ["No experiment results in this folder yet.", ""]
    else:
        table, verdicts = _lstm_rows(folder)
        lines += [_lstm_answer(verdicts), "", *table, "", *_time_step_lines(_load(folder, "csc"))]
        figures = [name for name in ("random_logit.png", "random_logit_examples.png", "cascading.png",
                                     "cascading_maps.png", "csc_logits.png", "csc_time_steps_logits.png",
                                     "csc_time_steps_lstm2.png", "two_classes.png") if (folder / name).exists()]
        lines += ["Figures: " + ", ".join(f"[{name}]({name})" for name in figures) + "; numbers per image in "
                  "random_logit.csv, cascading.csv, csc_medians.csv and csc_time_steps.csv.", ""]
    return _write_with_provenance_and_notes(folder, lines, notes)


def write_report(folder, title: str, notes: list | None = None) -> Path:
    """``report.md``: one table of the paper's claims with our measurements, plus notes."""
    folder = Path(folder)
    claims = collect_claims(folder)
    verdict = {True: "yes", False: "**no**", None: "not checked"}
    lines = [f"# {title}", "", "| experiment | paper's claim | prediction | measured | reproduced | "
             "explanation (measured control) |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {c.experiment} | {c.claim} | {c.prediction} | {c.measured} | {verdict[c.reproduced]} | "
              f"{c.explanation} |" for c in claims]
    if not claims:
        lines.append("| - | no experiment results in this folder yet | | | | |")
    lines += ["", f"{sum(c.reproduced is True for c in claims)} of {len(claims)} claims reproduced.", ""]
    return _write_with_provenance_and_notes(folder, lines, notes)
