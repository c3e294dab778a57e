"""The experiment harnesses that are not covered by the modules they run (see test_metrics,
test_mae, test_probe and test_benchmarks for evaluate_conditions, latent's region_errors,
token_drift, umap/neighbours, and compare_methods), and the data-regime study (benchmarks/bench_regime.py)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from bench_regime import data_regime  # noqa: E402

from occfau_lib import cache, experiments, viz  # noqa: E402
from occfau_lib.config import get_profile  # noqa: E402
from occfau_lib.loaders import load_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_data_regime_pretrains_on_corpora_and_probes_against_a_random_encoder():
    profile = get_profile("smoke")
    ds = load_dataset("synthfacs", profile=profile, aus="bp4d", progress=False)
    regime = data_regime(profile, ds, corpus_sizes=(32, 64), steps=(2,), hidden=16, progress=False)
    assert [(r["corpus"], r["steps"]) for r in regime["runs"]] == [(32, 2), (64, 2)]
    for scores in [*regime["runs"], regime["random"]]:
        assert 0 <= scores["linear"] <= 100 and 0 <= scores["mlp"] <= 100
    fig = viz.regime_curves(regime, chance=25.0)
    assert len(fig.axes[0].lines) == 2 * 2 + 1  # a line + a random line per probe, chance
    with pytest.raises(ValueError, match="does not divide"):
        data_regime(profile, ds, corpus_sizes=(48,), steps=(2,), progress=False)
    with cache.forbid_training():  # the scores themselves are cached: read back, nothing pretrained again
        again = data_regime(profile, ds, corpus_sizes=(32, 64), steps=(2,), hidden=16, progress=False)
    assert again == regime
    with cache.forbid_training(), pytest.raises(cache.NotShipped, match="regime"):  # another setting: measured anew
        data_regime(profile, ds, corpus_sizes=(32,), steps=(2,), hidden=16, progress=False)


def test_with_seed_changes_only_the_training_seeds():
    profile = get_profile("smoke")
    seeded = experiments.with_seed(profile, 3)
    assert seeded.teacher_train.seed == seeded.distill.seed == 3
    assert seeded.pretrain == profile.pretrain and seeded.data == profile.data
