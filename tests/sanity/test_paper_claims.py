"""The paper's claims, checked on the MNIST-trained appendix-D net (slow).

Runs the quick reproduction of ``make run`` (``python -m sanity all`` on 50 MNIST test images, every
paper method, patterns fitted on 2,000 training images, 10 simulation repetitions) once, with the
cached trained model (trained on first use, about 5 minutes), and checks each claim of the issue
against the numbers it wrote. The thresholds turning the paper's words into numbers live in
``sanity.report`` (fixed before looking at results); here each claim is one test, plus direct
checks of the JSON numbers behind it.

Three claims of the paper do not reproduce on this net and are marked as expected failures
(``strict``: if they start to hold, the test fails and the report and the README must say so):

- LRP alpha1beta0's median CSC at conv1 exceeds 1 - 1e-6 on the CIFAR-10-trained net (fig. 6d);
  on the MNIST variant (one epoch, one input channel) it stays near 1 - 1e-4.
- All modified-BP methods but LRP-z and DeepLIFT reach a median CSC of 0.99 (the paper's figure 6,
  mostly VGG-16 and ResNet-50): on this 6-layer net Deconv (about 0.26), LRP alpha5beta4,
  alpha2beta1, PatternAttribution, RectGrad and GuidedBP stay below 0.99 at conv1.
- The patterns have one dominant direction (sigma1/sigma2 > 6; the paper measured VGG-16's
  published patterns): the MNIST net's patterns, fitted on 2,000 images, have ratios of 1.3-2.3.
"""
import json

import pytest

from sanity import cli, report

pytestmark = pytest.mark.slow

N_IMAGES = 50


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick_reproduction")
    assert cli.main(["all", "--n-images", str(N_IMAGES), "--repetitions", "10", "--n-fit", "2000",
                     "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def claims(results):
    return report.collect_claims(results)


def _summary(results, name):
    return json.loads((results / f"{name}.json").read_text())


def _claim(claims, experiment: str, text: str):
    found = [c for c in claims if c.experiment == experiment and text in c.claim]
    assert len(found) == 1, (experiment, text, [c.claim for c in claims])
    return found[0]


def _assert_reproduced(claim):
    assert claim.reproduced is True, f"{claim.claim}: predicted {claim.prediction}, measured {claim.measured}"


def test_every_experiment_reports_its_claims(results, claims):
    assert {c.experiment for c in claims} == {"CSC", "random logit", "cascading", "simulation", "pattern-svd"}
    assert all(c.reproduced is not None for c in claims), [c.claim for c in claims if c.reproduced is None]
    text = (results / "report.md").read_text()
    assert "claims reproduced" in text and text.count("\n| ") == len(claims) + 2  # header, rule, one row each


# --- CSC (fig. 6) --------------------------------------------------------------------------------

@pytest.mark.xfail(strict=True, reason="paper: > 1 - 1e-6 on the CIFAR-10 net; MNIST variant: about 1 - 1e-4")
def test_csc_lrp_alpha1_beta0_exceeds_one_minus_1e6(claims):
    _assert_reproduced(_claim(claims, "CSC", "LRP alpha1beta0 converges"))


def test_csc_lrp_alpha1_beta0_converges_strongly(results):
    """What does hold here: alpha1beta0 is far above 0.999 and among the three fastest-converging
    methods (the paper: "LRP alpha1beta0, PatternNet, the ablation of DeepLIFT converges fastest")."""
    summary = _summary(results, "csc")
    top, first = summary["injection_layers"][0], summary["first_conv_layer"]
    medians = {m: summary["medians"][m][top][first] for m in summary["methods"]}
    assert medians["LRP-a1b0"] > 1 - 1e-3
    assert "LRP-a1b0" in sorted(medians, key=medians.get, reverse=True)[:3], medians


@pytest.mark.parametrize("method", ["Gradient", "LRP-z", "DeepLIFT-Rescale", "DeepLIFT-RevealCancel"])
def test_csc_gradient_lrp_z_and_deeplift_do_not_converge(claims, method):
    _assert_reproduced(_claim(claims, "CSC", f"{method} does not converge"))


@pytest.mark.xfail(strict=True, reason="on the MNIST variant of the 6-layer net Deconv, LRP-a2b1/a5b4, "
                                       "PatternAttribution and others stay below 0.99 at conv1")
def test_csc_all_other_modified_bp_methods_reach_0_99(claims):
    _assert_reproduced(_claim(claims, "CSC", "the other modified-BP methods converge"))


def test_csc_fastest_converging_methods_beat_every_non_converging_one(results):
    """What holds on the small net: the methods the paper finds fastest (LRP alpha1beta0, PatternNet,
    the DeepLIFT ablation; also DTD and LRP-CMP alpha1beta0) end closer to rank 1 than any method
    the paper finds non-converging, and the ablation's decoupled chains converge where DeepLIFT's
    own coupled rule does not."""
    summary = _summary(results, "csc")
    top, first = summary["injection_layers"][0], summary["first_conv_layer"]
    medians = {m: summary["medians"][m][top][first] for m in summary["methods"]}
    fastest = ["LRP-a1b0", "PatternNet", "DeepLIFT-ablation", "DTD", "LRP-CMP-a1b0"]
    slowest = ["Gradient", "LRP-z", "DeepLIFT-Rescale", "DeepLIFT-RevealCancel"]
    assert min(medians[m] for m in fastest) > max(medians[m] for m in slowest), medians
    assert medians["DeepLIFT-ablation"] >= 0.98, medians
    assert min(medians[m] for m in fastest) >= 0.98, medians


# --- random logit (fig. 4) -----------------------------------------------------------------------

def test_random_logit_converging_methods_give_the_same_map(claims):
    _assert_reproduced(_claim(claims, "random logit", "converging methods give the same map"))


def test_random_logit_gradient_lrp_z_and_deeplift_are_class_sensitive(claims):
    _assert_reproduced(_claim(claims, "random logit", "class sensitive"))


# --- cascading randomization (fig. 5) --------------------------------------------------------------

def test_cascading_converging_methods_keep_high_ssim(claims):
    _assert_reproduced(_claim(claims, "cascading", "converging methods ignore randomized layers"))


def test_cascading_gradient_and_deeplift_drop(claims):
    _assert_reproduced(_claim(claims, "cascading", "gradient and DeepLIFT change"))


def test_cascading_confidence_intervals_bracket_the_medians(results):
    summary = _summary(results, "cascading")
    checked = 0
    for i, method in enumerate(summary["methods"]):
        for low, median, high in zip(summary["lower"][i], summary["median"][i], summary["upper"][i]):
            if median == median:  # NaN: every map of that step constant (counted in n_undefined)
                assert low <= median <= high, method
                checked += 1
    assert checked >= len(summary["methods"]) * (len(summary["steps"]) - 1)


# --- matrix-chain simulation (fig. 8) --------------------------------------------------------------

@pytest.mark.parametrize("variant", ["positive", "non_negative"])
def test_simulation_positive_chains_converge_within_about_7_products(claims, variant):
    _assert_reproduced(_claim(claims, "simulation", f"{variant} chains converge"))


def test_simulation_gaussian_chains_do_not_converge(claims):
    _assert_reproduced(_claim(claims, "simulation", "Gaussian chains do not converge"))


def test_simulation_alpha_beta_chains_converge_for_small_beta(claims):
    _assert_reproduced(_claim(claims, "simulation", "alpha W+ + beta W- chains"))


# --- PatternAttribution's singular values (fig. 3) -------------------------------------------------

@pytest.mark.xfail(strict=True, reason="paper: VGG-16 patterns, sigma1/sigma2 > 6; MNIST appendix-D net: about 1.3-2.3")
def test_pattern_svd_patterns_have_one_dominant_direction(claims):
    _assert_reproduced(_claim(claims, "pattern-svd", "patterns A have one dominant direction"))


def test_pattern_svd_hadamard_product_is_closer_to_rank_one_than_the_weights(claims):
    _assert_reproduced(_claim(claims, "pattern-svd", "A (.) W has a larger sigma1/sigma2 than W"))
