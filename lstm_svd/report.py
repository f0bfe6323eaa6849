"""``report.md``: each finding of the thesis next to our measurement.

Findings are read from the JSON files the commands wrote and skipped when their command has not run.
The thresholds that turn the thesis' words into checks are fixed here and printed in the report.
Which class goes with which singular direction depends on the trained weights (protocols.md, part 2):
those findings are marked "weights" and compared for information; the "structure" findings are the
ones that should reproduce with any trained classifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from architectures.cache import atomic_write_text

from .files import read_json

THESIS_ACCURACY = 0.9723
THESIS_SAMPLE_CLASSIFIER = 0.9290
# Thesis table 4.1: classes predicted by the rank-1 output layer built from direction i alone.
THESIS_TABLE_4_1 = {1: [6, 7], 2: [0, 1], 3: [4, 5], 4: [2, 9], 5: [5, 8], 6: [0, 4], 7: [4, 6], 8: [2, 3],
                    9: [7, 9], 10: [0, 3]}
LOST = 0.1  # recall below this: the class is lost (thesis: 7 of 974 eights at k = 4)
GOOD_ACCURACY = 0.90  # "keeps a good performance"
ACCURACY_TOLERANCE = 0.005  # "reaches the thesis' accuracy": at most half a point below
SAMPLE_CLASSIFIER_TOLERANCE = 0.03
SMALL_SINGULAR = 0.1  # a direction counts when s_i >= 10% of s_1 ("8 principal directions")
PCA_BAND = (0.40, 0.60)  # "about 50%"
CLUSTERS_KNN = 0.90  # "ten distinct clusters": 5-NN accuracy in the t-SNE map
COLLAPSED_SPREAD = 0.25  # autoencoder outputs vary less than a quarter as much as the inputs


@dataclass
class Finding:
    section: str
    thesis: str
    criterion: str
    ours: str
    reproduced: bool | None  # None: qualitative, see the figure
    kind: str = "structure"  # "structure", "weights" (depends on the trained weights) or "new"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _classes(values) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}" if values else "none"


def _joined(values) -> str:
    return " ".join(map(str, values))


def table_4_1(just_one: list, rank_one: list) -> list:
    """Rows (direction, thesis classes, ours, ours over 1%, envelope classes, envelope agreement)."""
    geometry = {g["direction"]: g for g in rank_one}
    rows = []
    for summary in just_one:
        i = summary["keep"][0]
        envelope = geometry.get(i, {})
        rows.append([i, _joined(THESIS_TABLE_4_1.get(i, [])), _joined(summary["predicted_classes"]),
                     _joined(summary["predicted_classes_over_1_percent"]),
                     _joined(envelope.get("envelope_classes", [])), envelope.get("agreement", "")])
    return rows


# ------------------------------------------------------------------------------------------ findings
def _classifier(c: dict, trajectory: dict | None) -> list:
    threshold = THESIS_ACCURACY - ACCURACY_TOLERANCE
    recipe = (c.get("model") or {}).get("recipe", "?")
    findings = [Finding("classifier", "test accuracy 97.23% (PyTorch, 2 epochs)", f">= {_pct(threshold)}",
                        f"{_pct(c['test_accuracy'])} (recipe '{recipe}', {c['n_test']} test images)",
                        c["test_accuracy"] >= threshold)]
    if trajectory and trajectory.get("epochs"):
        last = trajectory["epochs"][-1]
        findings.append(Finding("classifier", "97.23% after 2 epochs of Adam lr 0.01, batch 100",
                                f">= {_pct(threshold)} with the '{trajectory['recipe']}' recipe in Keras",
                                f"{_pct(last['accuracy_test'])} after {last['epoch']} epochs",
                                last["accuracy_test"] >= threshold))
    recall = np.asarray(c["recall_test"], dtype=float)
    hardest = int(np.nanargmin(recall))
    pairs = ", ".join(f"{p['true']}->{p['predicted']} ({p['count']})" for p in c["confused_pairs"])
    findings.append(Finding("classifier", "5 is the hardest digit (confused with 3, 8, 9); 4 is often taken for 9",
                            "lowest-recall class and most confused pairs (true->predicted)",
                            f"lowest recall: class {hardest} ({_pct(np.nanmin(recall))}); pairs {pairs}",
                            hardest == 5, kind="weights"))
    return findings


def _output_layer(o: dict, embed: dict | None) -> list:
    s = np.asarray(o["singular_values"])
    count = int(np.sum(s >= SMALL_SINGULAR * s[0]))
    explained = float(np.sum(o["pca_explained_variance_ratio"]))
    order = np.argsort(-np.asarray(o["bias"]))
    largest, smallest = sorted(order[:4].tolist()), sorted(order[-3:].tolist())
    findings = [
        Finding("output layer", "the rows of W^T are nearly orthogonal or obtuse: angles tend to be > 90°",
                "more than half of the row pairs have cos < 0",
                f"{_pct(o['fraction_obtuse_pairs'])} of pairs obtuse, "
                f"{_pct(o['fraction_near_orthogonal_pairs'])} with |cos| < 0.1", o["fraction_obtuse_pairs"] > 0.5),
        Finding("output layer", "the singular values suggest 8 principal directions (of 10)",
                f"number of s_i >= {SMALL_SINGULAR:g} s_1 is 8 +- 1",
                f"{count} (s = {', '.join(f'{v:.2f}' for v in s)})", abs(count - 8) <= 1),
        Finding("output layer", "PCA: the first 3 components of y explain about 50% of the variance",
                f"{PCA_BAND[0]:.0%}-{PCA_BAND[1]:.0%}",
                f"{_pct(explained)} (train; the same axes hold {_pct(o['pca_explained_variance_test'])} of the test "
                f"variance; W^T's first 3 right singular vectors hold "
                f"{_pct(o.get('variance_on_top_singular_directions'))})", PCA_BAND[0] <= explained <= PCA_BAND[1]),
        Finding("output layer", "the bias favours 2, 4, 5, 7 and underplays 0, 3, 6",
                "classes with the 4 largest and 3 smallest biases",
                f"largest {_classes(largest)}, smallest {_classes(smallest)}",
                largest == [2, 4, 5, 7] and smallest == [0, 3, 6], kind="weights"),
    ]
    if embed:
        train, test = embed["train"]["knn_accuracy_tsne"], embed["test"]["knn_accuracy_tsne"]
        findings.append(Finding("output layer", "t-SNE of h shows ten distinct clusters, one per class",
                                f"5-NN accuracy in the 2-D map >= {CLUSTERS_KNN:.0%} (train and test)",
                                f"train {_pct(train)}, test {_pct(test)} ({embed['train']['n_points']} and "
                                f"{embed['test']['n_points']} random points)", min(train, test) >= CLUSTERS_KNN))
    return findings


def _first_k(variants: dict) -> list:
    findings = []
    if "first-10" in variants:
        full = variants["first-10"]
        findings.append(Finding("low rank", "k = 10 reproduces the original predictions exactly",
                                "0 changed predictions", f"{full['changed_predictions']} changed",
                                full["changed_predictions"] == 0))
    good = [variants[f"first-{k}"] for k in range(5, 11) if f"first-{k}" in variants]
    if good:
        worst = min(good, key=lambda v: v["accuracy"])
        findings.append(Finding("low rank", "first-k keeps good accuracy for every k >= 5",
                                f"accuracy >= {GOOD_ACCURACY:.0%} and no lost class (recall < {LOST:g}) for k = 5..10",
                                f"lowest: {worst['name']} {_pct(worst['accuracy'])}, "
                                f"lost {_classes(worst['lost_classes'])}",
                                all(v["accuracy"] >= GOOD_ACCURACY and not v["lost_classes"] for v in good)))
    claims = (("first-4", "k = 4 loses exactly one class (8: 7 of 974 correct), mostly predicted as 5",
               "exactly one class with recall < 0.1", lambda n: n == 1),
              ("first-3", "k = 3 loses two classes (2 and 8)", "exactly two lost classes", lambda n: n == 2),
              ("first-2", "k = 2 cannot predict half of the classes", "4 to 6 lost classes", lambda n: 4 <= n <= 6))
    for name, thesis, criterion, check in claims:
        if name in variants:
            v = variants[name]
            findings.append(Finding("low rank", thesis, criterion,
                                    f"lost {_classes(v['lost_classes'])}; accuracy {_pct(v['accuracy'])}",
                                    check(len(v["lost_classes"]))))
    if "first-1" in variants:
        v = variants["first-1"]
        findings.append(Finding("low rank", "k = 1 predicts only two classes (6 and 7)", "exactly 2 predicted classes",
                                f"predicts {_classes(v['predicted_classes'])}", len(v["predicted_classes"]) == 2))
    return findings


def _last_k_and_except_one(variants: dict) -> list:
    findings = []
    if "last-9" in variants and "first-1" in variants:
        v = variants["last-9"]
        weakest = sorted(np.argsort(v["recall"])[:2].tolist())
        rank_one = variants["first-1"]["predicted_classes"]
        findings.append(Finding("low rank", "last-9 (direction 1 dropped) is weak on the classes that rank 1 "
                                "predicts (6, 7)",
                                "the two lowest-recall classes of last-9 are classes that first-1 predicts",
                                f"lowest recall {_classes(weakest)}; first-1 predicts {_classes(rank_one)}; "
                                f"accuracy {_pct(v['accuracy'])}", set(weakest) <= set(rank_one)))
    if "last-6" in variants:
        v = variants["last-6"]
        findings.append(Finding("low rank", "last-6 cannot predict half of the classes", "4 to 6 lost classes",
                                f"lost {_classes(v['lost_classes'])}", 4 <= len(v["lost_classes"]) <= 6))
    except_one = [variants[f"all-except-{i}"] for i in range(1, 11) if f"all-except-{i}" in variants]
    if except_one:
        losing = {int(v["name"].split("-")[-1]): v["lost_classes"] for v in except_one if v["lost_classes"]}
        measured = "; ".join(f"without {d}: lost {_classes(c)}" for d, c in losing.items()) or "no direction"
        findings.append(Finding("low rank", "dropping one direction removes one class for one or two directions "
                                "(5th: class 8, 4th: class 2); the others show no pattern",
                                "1 or 2 directions whose removal loses exactly one class; none loses more", measured,
                                1 <= len(losing) <= 2 and all(len(c) == 1 for c in losing.values())))
        if variants.get("first-4", {}).get("lost_classes"):
            target = set(variants["first-4"]["lost_classes"])
            matching = [d for d, c in losing.items() if d >= 5 and target & set(c)]
            findings.append(Finding("low rank", "the class lost at k = 4 is the one lost by dropping a single "
                                    "direction beyond the 4th (thesis: class 8, direction 5)",
                                    "some direction j >= 5 whose removal alone loses a class lost at k = 4",
                                    f"k = 4 loses {_classes(sorted(target))}; such directions: {_classes(matching)}",
                                    bool(matching)))
    return findings


def _rank_one(variants: dict, rank_one: list) -> list:
    findings = []
    just_one = [variants[f"just-{i}"] for i in range(1, 11) if f"just-{i}" in variants]
    if just_one:
        counts = [len(v["predicted_classes_over_1_percent"]) for v in just_one]
        findings.append(Finding("low rank", "every rank-1 variant (just one direction) predicts about two classes "
                                "(table 4.1)", "each predicts 2 +- 1 classes (classes with > 1% of the predictions)",
                                "classes per direction: " + ", ".join(map(str, counts)),
                                all(1 <= c <= 3 for c in counts)))
        same = sum(sorted(v["predicted_classes_over_1_percent"]) == THESIS_TABLE_4_1[v["keep"][0]] for v in just_one)
        findings.append(Finding("low rank", "table 4.1's class pairs", "same pairs as the thesis",
                                f"{same} of {len(just_one)} directions give the thesis' pair", same == len(just_one),
                                kind="weights"))
    if rank_one:
        agreement = min(g["agreement"] for g in rank_one)
        inside = all(set(g["empirical_classes"]) <= set(g["envelope_classes"]) for g in rank_one)
        findings.append(Finding("low rank", "(why so few classes) a rank-1 layer makes every logit a line in "
                                "t = h.u; the prediction is the upper envelope of the lines",
                                "the envelope over the observed range of t predicts every test prediction",
                                f"agreement {_pct(agreement)} (worst direction); predicted classes within the "
                                f"envelope: {'yes' if inside else 'no'}; envelope sizes "
                                + ", ".join(str(len(g["envelope_classes"])) for g in rank_one),
                                agreement == 1.0 and inside, kind="new"))
    return findings


def _generative(ae: dict | None, vae: dict | None) -> list:
    findings = []
    if ae:
        findings.append(Finding("hidden layer", "the LSTM autoencoder outputs the mean image for every input "
                                "(fig. 5.1)", f"spread of the outputs < {COLLAPSED_SPREAD} of the inputs' spread",
                                f"relative spread {ae['relative_spread']:.3f}; MSE {ae['mse']:.4f} vs mean image "
                                f"{ae['mse_mean_image']:.4f} ({ae['epochs']} epochs, {ae['n_train']} images)",
                                ae["relative_spread"] < COLLAPSED_SPREAD))
    if vae:
        tsne = ", ".join(f"{split} {_pct(v['knn_accuracy_tsne'])}" for split, v in vae.get("tsne", {}).items())
        findings.append(Finding("hidden layer", "the VAE's latent space is almost continuous, classes still grouped "
                                "(fig. 5.2)", "qualitative: see tsne_vae.png; 5-NN accuracy in the latent t-SNE map",
                                f"{tsne}; negative ELBO {vae['negative_elbo_nats']:.1f} nats "
                                f"(KL {vae['kl_nats']:.1f})", None))
        sample = vae["sample_classifier"]
        findings.append(Finding("hidden layer", "a classifier (dense 400, 784) trained on decoder samples reaches "
                                "92.90%", f"within {SAMPLE_CLASSIFIER_TOLERANCE:.0%} of 92.90% or above",
                                f"{_pct(sample['accuracy'])} ({vae['epochs']} VAE epochs, {sample['epochs']} "
                                f"classifier epochs; same classifier on real images "
                                f"{_pct(sample.get('baseline_accuracy_real_images'))})",
                                sample["accuracy"] >= THESIS_SAMPLE_CLASSIFIER - SAMPLE_CLASSIFIER_TOLERANCE))
    return findings


def _gates(g: dict) -> list:
    findings = []
    full = [v for m in g["matrices"] for v in m["variants"] if v["name"] == "first-10"]
    if full:
        changed = sum(v["changed_predictions"] for v in full)
        findings.append(Finding("gates (new)", "(proposed next step) low-rank gate matrices: sanity check",
                                "rank 10 of every block changes no prediction",
                                f"{changed} changed predictions over {len(full)} blocks", changed == 0, kind="new"))
    zeroed = {f"{m['layer']} {m['kind']} {m['thesis_name']}": v["accuracy"]
              for m in g["matrices"] for v in m["variants"] if v["name"] == "first-0"}
    if zeroed:
        ranked = sorted(zeroed.items(), key=lambda item: item[1])
        findings.append(Finding("gates (new)", "(proposed next step) which gate matrices matter",
                                "accuracy with the block set to 0",
                                "most harmful: " + "; ".join(f"{k} {_pct(v)}" for k, v in ranked[:3])
                                + "; least harmful: " + "; ".join(f"{k} {_pct(v)}" for k, v in ranked[::-1][:3]),
                                None, kind="new"))
    return findings


def collect_findings(folder) -> list:
    folder = Path(folder)
    findings = []
    classifier = read_json(folder / "classifier.json")
    if classifier:
        findings += _classifier(classifier, read_json(folder / "trajectory.json"))
    output = read_json(folder / "output_layer.json")
    if output:
        findings += _output_layer(output, read_json(folder / "embed.json"))
    lowrank = read_json(folder / "lowrank.json")
    if lowrank:
        variants = {v["name"]: v for v in lowrank["variants"]}
        findings += _first_k(variants) + _last_k_and_except_one(variants)
        findings += _rank_one(variants, lowrank.get("rank_one") or [])
    findings += _generative(read_json(folder / "autoencoder.json"), read_json(folder / "vae.json"))
    gates = read_json(folder / "gates.json")
    if gates:
        findings += _gates(gates)
    return findings


# ------------------------------------------------------------------------------------------- tables
def _cell(value) -> str:
    return str(value).replace("|", "\\|")  # a bare | would end the table cell


def _markdown_table(header: list, rows: list) -> list:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + \
        ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _lowrank_tables(data: dict) -> list:
    lines = ["## Low-rank W^T, every variant (test set, bias kept)", "",
             f"Original model: accuracy {_pct(data['original_accuracy'])}. 'lost' = recall < {LOST:g}; "
             "'predicted' = classes receiving more than 1% of the predictions. All variants together took "
             f"{1000 * data['seconds_for_all_variants']:.1f} ms from the cached hidden states.", ""]
    rows = [[v["name"], _joined(v["keep"]), _pct(v["accuracy"]), _classes(v["lost_classes"]),
             _classes(v["predicted_classes_over_1_percent"]), v["changed_predictions"]] for v in data["variants"]]
    lines += _markdown_table(["variant", "kept directions", "accuracy", "lost classes", "predicted classes",
                              "changed predictions"], rows)
    just_one = [v for v in data["variants"] if v["family"] == "just-one"]
    if just_one:
        table = table_4_1(just_one, data.get("rank_one") or [])
        lines += ["", "## Table 4.1: classes predicted by each rank-1 variant", ""]
        lines += _markdown_table(["direction i", "thesis", "ours (any prediction)", "ours (> 1%)",
                                  "analytic envelope on the observed t", "envelope = prediction"],
                                 [row[:5] + [_pct(row[5]) if row[5] != "" else ""] for row in table])
    return lines + [""]


def _gate_table(g: dict) -> list:
    lines = ["## Gate matrices (the thesis' proposed next step)", "",
             f"Test accuracy of the unmodified model on the {g['n_test']} images used: "
             f"{_pct(g['original_accuracy'])}. Each row replaces one gate block (one LSTM layer; input kernel "
             "x -> gate or recurrent kernel h -> gate) by its first k singular directions; the rest of the network "
             "is unchanged.", ""]
    ranks = ["first-0", "first-1", "first-2", "first-3", "first-5", "first-8"]
    rows = []
    for m in g["matrices"]:
        by_name = {v["name"]: v for v in m["variants"]}
        rows.append([m["layer"], m["kind"], f"{m['thesis_name']} ({m['gate']})", "x".join(map(str, m["shape"])),
                     m["smallest_rank_within_1_point"]]
                    + [_pct(by_name[r]["accuracy"]) if r in by_name else "" for r in ranks])
    lines += _markdown_table(["layer", "kernel", "gate", "shape", "smallest k within 1 point"]
                             + [f"acc {r}" for r in ranks], rows)
    decoder = g.get("decoder") or {}
    if decoder:
        lines += ["", f"The h -> image decoder ({decoder.get('epochs')} epochs) reconstructs test digits from h with "
                  f"MSE {decoder['mse']:.4f} (mean image: {decoder['mse_mean_image']:.4f}); gates/decoded_*.png show "
                  "the decoded h of one test digit per class as each block loses rank."]
    return lines + [""]


# -------------------------------------------------------------------------------------------- notes
def _settings_note(command: str, s: dict) -> str | None:
    """The settings that shape one command's numbers, in words."""
    mode = s.get("mode", "full")
    if command == "embed":
        return f"embed ({mode}): t-SNE of h on {s['tsne_samples']} random points per split (seed {s['seed']})."
    if command == "autoencoder":
        return (f"autoencoder ({mode}): {s['ae_epochs']} epoch(s) on {s['ae_train'] or 'all'} training images, "
                "Adam 1e-3, batch 128, pixel cross-entropy.")
    if command == "vae":
        return (f"vae ({mode}): {s['vae_epochs']} epochs on {s['vae_train'] or 'all'} training images, latent "
                f"dimension {s['latent_dim']}, Adam 3e-3, batch 128; t-SNE of the latent means on "
                f"{s['tsne_samples']} random points per split; classifier on decoder samples {s['sample_epochs']} "
                "epochs.")
    if command == "gates":
        families = s["gate_families"]  # a list; a string in the settings.json of earlier versions
        families = families if isinstance(families, str) else ",".join(families)
        return (f"gates ({mode}): families '{families}' on {s['gate_test'] or 'all'} test images; "
                f"h -> image decoder {s['decoder_epochs']} epochs on the training states.")
    if command == "train":
        if s.get("trajectory") in (None, "none"):
            return (f"train ({mode}): no per-epoch retraining (--trajectory none); confusion matrices of the final "
                    "model only.")
        return f"train ({mode}): per-epoch confusion matrices from retraining with the '{s['trajectory']}' recipe."
    return None


FIXED_NOTES = [
    "Singular directions are numbered from 1 (largest singular value), as in the thesis. The class that goes with a "
    "direction depends on the trained weights, so 'weights' findings are compared for information only.",
    "The t-SNE maps use a random subsample of each split (stated in the figure titles); the thesis plotted all points.",
    "The classifier trained on VAE samples is read as dense 400 (ReLU) -> dense 784 (ReLU) -> 10 logits; it learns "
    "from one decoded sample z ~ q(z|x) per training image (label of x) and is tested on the real test images.",
    "The thesis proposed to draw the hidden state with the VAE decoder; the VAE's latent space is not the "
    "classifier's h, so we train a decoder h -> image (dense 400, 784) on the classifier's own training-set states.",
    "Gate blocks: Keras packs i, f, c, o along the last axis of kernel (x -> gates) and recurrent_kernel (h -> gates); "
    "the thesis' W_g is Keras' c. Each block is replaced on a copy of the model, the LSTM is rerun, and 'first-0' "
    "sets the block to zero.",
]


def _notes(folder: Path) -> list:
    settings = read_json(folder / "settings.json") or {}
    timings = read_json(folder / "timings.json") or {}
    notes = []
    if any(s.get("mode") == "quick" for s in settings.values()):
        notes.append("QUICK MODE (`--quick`): small t-SNE subsamples, few autoencoder/VAE epochs on a subset of the "
                     "training images (the thesis trained its VAE for 90+ epochs), gate variants on a test subset, "
                     "no per-epoch retraining. The generative findings are therefore not comparable with the thesis; "
                     "run without --quick for the full protocol. Settings per command below.")
    for command, s in settings.items():
        text = _settings_note(command, s)
        if text and text not in notes:
            notes.append(text)
    subsets = {(s.get("n_train"), s.get("n_test")) for s in settings.values() if s.get("n_train") or s.get("n_test")}
    for n_train, n_test in sorted(subsets, key=str):
        commands = [c for c, s in settings.items() if (s.get("n_train"), s.get("n_test")) == (n_train, n_test)]
        notes.append(f"{', '.join(commands)}: analyses on a random subset of {n_train or 'all'} training and "
                     f"{n_test or 'all'} test images.")
    model = next((s["model"] for s in settings.values() if s.get("model")), None)
    if model:
        notes.append(f"Classifier: {model.get('recipe')} recipe ({model.get('epochs', '?')} epochs), weights "
                     f"{model.get('source')} (fingerprint {model.get('fingerprint')}). The thesis used PyTorch; the "
                     "Keras model has the same layers.")
    notes += FIXED_NOTES
    if timings:
        notes.append("Wall time per command (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()) + ".")
    return notes


def write_report(folder) -> Path:
    folder = Path(folder)
    findings = collect_findings(folder)
    verdict = {True: "yes", False: "**no**", None: "see figure"}
    lines = ["# LSTM MNIST thesis: its findings and our measurements", "",
             "Kinds: *structure* should reproduce with any trained weights; *weights* depends on which class a "
             "direction happens to carry (compared for information); *new* is ours (the thesis' proposed next step "
             "or an explanation of its findings).", ""]
    lines += _markdown_table(["section", "thesis finding", "criterion (fixed beforehand)", "ours", "reproduced",
                              "kind"], [[f.section, f.thesis, f.criterion, f.ours, verdict[f.reproduced], f.kind]
                                        for f in findings] or [["-", "no results in this folder yet", "", "", "", ""]])
    structural = [f for f in findings if f.kind == "structure" and f.reproduced is not None]
    lines += ["", f"{sum(f.reproduced for f in structural)} of {len(structural)} structural findings reproduced.", ""]
    lowrank = read_json(folder / "lowrank.json")
    if lowrank:
        lines += _lowrank_tables(lowrank)
    gates = read_json(folder / "gates.json")
    if gates:
        lines += _gate_table(gates)
    lines += ["## Notes", ""] + [f"- {note}" for note in _notes(folder)] + [""]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
