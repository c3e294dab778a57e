"""Tests for occfau_lib.metrics: expected numbers are worked out by hand in the comments."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from occfau_lib import experiments, metrics
from occfau_lib.metrics import (
    aggregate_folds,
    auc_per_au,
    average_f1,
    evaluate,
    f1_per_au,
    format_csv,
    format_table,
)

# Two AUs, five frames.
LABELS = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0]])
PROBS = np.array([[0.9, 0.2], [0.4, 0.8], [0.6, 0.7], [0.1, 0.9], [0.5, 0.3]])
# AU a: pred (>=0.5) = 1,0,1,0,1 vs 1,1,0,0,1 -> TP=2 FP=1 FN=1 -> F1 = 2*2/(2*2+1+1) = 2/3
# AU b: pred          = 0,1,1,1,0 vs 0,1,0,1,0 -> TP=2 FP=1 FN=0 -> F1 = 4/5
F1_BY_HAND = [2 / 3, 0.8]


def test_f1_hand_computed():
    np.testing.assert_allclose(f1_per_au(LABELS, PROBS), F1_BY_HAND)
    assert average_f1(LABELS, PROBS) == pytest.approx((2 / 3 + 0.8) / 2)


def test_f1_threshold_and_binary_predictions():
    # 0/1 predictions give the same F1 as the probabilities they came from.
    np.testing.assert_allclose(f1_per_au(LABELS, (PROBS >= 0.5).astype(int)), F1_BY_HAND)
    # Threshold 0.65: AU a pred = 1,0,0,0,0 -> TP=1 FN=2 -> F1 = 2/(2+2) = 0.5; AU b unchanged.
    np.testing.assert_allclose(f1_per_au(LABELS, PROBS, threshold=0.65), [0.5, 0.8])


def test_unknown_labels_are_masked_not_negative():
    labels = np.array([[1], [-1], [-1], [0], [1]])
    probs = np.array([[0.9], [0.8], [0.7], [0.2], [0.6]])
    # Kept rows 0,3,4: pred 1,0,1 vs 1,0,1 -> F1 = 1.0.
    assert f1_per_au(labels, probs)[0] == pytest.approx(1.0)
    # Reading -1 as 0 would add two false positives: TP=2 FP=2 -> F1 = 4/6.
    assert f1_per_au(np.where(labels < 0, 0, labels), probs)[0] == pytest.approx(2 / 3)
    # AUC is masked too: kept rows separate perfectly; as negatives, 0.8 and 0.7 outrank 0.6.
    assert auc_per_au(labels, probs)[0] == pytest.approx(1.0)
    assert auc_per_au(np.where(labels < 0, 0, labels), probs)[0] == pytest.approx(4 / 6)


def test_zero_division_and_all_unknown():
    labels = np.array([[0, -1, 1], [0, -1, 1], [0, -1, 0]])
    probs = np.array([[0.1, 0.9, 0.2], [0.2, 0.9, 0.3], [0.3, 0.9, 0.9]])
    f1 = f1_per_au(labels, probs)
    assert f1[0] == 0.0  # no positives, none predicted: 0, as the literature reports it
    assert math.isnan(f1[1])  # every entry unknown: no score
    assert f1[2] == 0.0  # positives all missed (TP=0)
    # The average skips the nan AU: (0 + 0) / 2.
    assert average_f1(labels, probs) == 0.0


def test_auc_hand_computed_and_single_class_is_nan():
    labels = np.array([[0, 1, 0], [0, 1, -1], [1, 1, -1], [1, 1, 1]])
    probs = np.array([[0.1, 0.5, 0.3], [0.4, 0.6, 0.2], [0.35, 0.7, 0.9], [0.8, 0.8, 0.4]])
    # AU a: positive/negative pairs (0.35,0.1) yes, (0.35,0.4) no, (0.8,*) yes twice -> 3/4.
    auc = auc_per_au(labels, probs)
    assert auc[0] == pytest.approx(0.75)
    assert math.isnan(auc[1])  # only positives
    assert auc[2] == pytest.approx(1.0)  # rows 0 and 3 kept: 0.4 > 0.3


def test_torch_input_matches_numpy():
    labels = torch.tensor(LABELS, dtype=torch.float32)
    probs = torch.tensor(PROBS, dtype=torch.float32, requires_grad=True)
    np.testing.assert_allclose(f1_per_au(labels, probs), F1_BY_HAND)
    np.testing.assert_allclose(auc_per_au(labels, probs), auc_per_au(LABELS, PROBS))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown code 9"):
        f1_per_au(np.array([[1], [9]]), np.array([[0.5], [0.5]]))
    with pytest.raises(ValueError, match="shape"):
        f1_per_au(LABELS, PROBS[:, :1])
    with pytest.raises(ValueError, match="AUs given"):
        evaluate(LABELS, PROBS, aus=(1, 2, 4))


def test_evaluate_is_keyed_by_au_and_json_serialisable():
    labels = LABELS.copy()
    labels[2, 1] = -1  # AU2 row 2 was a false positive; masked: TP=2 FP=0 FN=0 -> F1 = 1
    res = evaluate(labels, PROBS, aus=(1, 2))
    assert res["f1"] == pytest.approx({1: 2 / 3, 2: 1.0})
    assert res["avg_f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert res["n"] == 5 and res["n_unknown"] == {1: 0, 2: 1}
    assert set(res["auc"]) == {1, 2} and isinstance(res["avg_auc"], float)
    json.dumps(res)  # plain Python types only


def test_aggregate_folds_mean_std_by_hand():
    folds = [
        {"f1": {1: 0.5, 2: 0.2}, "auc": {1: 0.7, 2: float("nan")}},
        {"f1": {1: 0.6, 2: 0.4}, "auc": {1: 0.8, 2: 0.6}},
        {"f1": {1: 0.7, 2: 0.9}, "auc": {1: 0.9, 2: 0.8}},
    ]
    folds[2] = json.loads(json.dumps(folds[2]))  # keys "1", "2" after a JSON round trip
    agg = aggregate_folds(folds)
    # AU1: mean 0.6; deviations -0.1, 0, 0.1 -> population std sqrt(0.02/3)
    # AU2: mean 0.5; deviations -0.3, -0.1, 0.4 -> population std sqrt(0.26/3)
    assert agg["f1"] == pytest.approx({1: 0.6, 2: 0.5})
    assert agg["f1_std"] == pytest.approx({1: math.sqrt(0.02 / 3), 2: math.sqrt(0.26 / 3)})
    assert agg["avg_f1"] == pytest.approx(0.55)
    # AUC of AU2 is nan in fold 1, so it averages the other two: 0.7, std 0.1.
    assert agg["auc"] == pytest.approx({1: 0.8, 2: 0.7})
    assert agg["auc_std"][2] == pytest.approx(0.1)
    assert agg["avg_auc"] == pytest.approx(0.75)
    assert agg["n_folds"] == 3
    with pytest.raises(ValueError, match="disagree"):
        aggregate_folds([{"f1": {1: 0.5}, "auc": {1: 0.5}}, {"f1": {2: 0.5}, "auc": {2: 0.5}}])


ROWS = {"baseline": {1: 0.5, 2: 0.25}, "ours": {1: 0.6667, 2: float("nan")}}


def test_format_table_exact():
    expected = (
        "| Method | AU1 | AU2 | Avg |\n"
        "|:---|---:|---:|---:|\n"
        "| baseline | 50.0 | 25.0 | 37.5 |\n"
        "| ours | 66.7 | – | 66.7 |"
    )
    assert format_table(ROWS, (1, 2)) == expected
    assert format_table(ROWS, (2,), digits=2, scale=1, average=False) == (
        "| Method | AU2 |\n|:---|---:|\n| baseline | 0.25 |\n| ours | – |"
    )


def test_format_csv_round_trip():
    text = format_csv(ROWS, (1, 2))
    assert text.splitlines()[0] == "method,AU1,AU2,Avg"
    read = list(csv.DictReader(io.StringIO(text)))
    assert [r["method"] for r in read] == ["baseline", "ours"]
    assert [float(read[0][k]) for k in ("AU1", "AU2", "Avg")] == [0.5, 0.25, 0.375]
    assert float(read[1]["AU1"]) == 0.6667 and float(read[1]["Avg"]) == 0.6667
    assert math.isnan(float(read[1]["AU2"]))


def test_evaluate_conditions_scores_every_fold_on_the_same_occlusions():
    from occfau_lib.data import ArrayDataset

    rng = np.random.default_rng(0)
    n = 36
    labels = rng.integers(0, 2, (n, 2)).astype(np.int8)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    ds = ArrayDataset(images, labels, [f"s{i % 6}" for i in range(n)], (1, 12), "toy")
    calls = []

    def predict(fold, occ):  # the truth on clean faces (test rows come in order), "absent" when occluded
        calls.append((fold, occ.spec, occ.visible.copy()))
        test = ds.fold(fold)[1]
        assert len(occ.images) == len(test)
        return test.labels.astype(float) if occ.spec == "clean" else np.zeros((len(test), 2))

    out = experiments.evaluate_conditions(predict, ds, {"clean": "clean", "p50": "patches:0.5"}, 8, folds=(1, 2))
    assert set(out) == {"clean", "p50"} and out["clean"]["avg_f1"] == 1.0 and out["p50"]["avg_f1"] == 0.0
    assert out["clean"]["n_folds"] == 2 and len(out["p50"]["folds"]) == 2
    assert [(f, s) for f, s, _ in calls] == [(1, "clean"), (1, "patches:0.5"), (2, "clean"), (2, "patches:0.5")]
    assert ((~calls[1][2]).sum(1) == 2).all()  # 50% of the 4 patches of a 16-px face
    again = []
    experiments.evaluate_conditions(lambda k, o: again.append(o.visible) or np.zeros((len(o.images), 2)), ds,
                                {"p50": "patches:0.5"}, 8, folds=(1, 2))
    assert np.array_equal(again[0], calls[1][2])  # fixed test occlusions: the same masks every run
    sizes = []
    experiments.evaluate_conditions(lambda k, o: sizes.append(len(o.images)) or np.zeros((len(o.images), 2)), ds,
                                {"c": "clean"}, 8, folds=(1,), test_stride=3)
    assert sizes == [-(-len(ds.fold(1)[1]) // 3)]


def test_a_readers_answers_are_cached_per_model_and_occluded_batch(tmp_path, monkeypatch):
    """A Reader (a model's predict with the model's identity) is run once per occluded batch: the
    same model on the same occluded faces again is read back, bit-identical; another model, or
    other occlusions of the same faces, run anew."""
    from occfau_lib.data import ArrayDataset

    monkeypatch.setenv("OCCFAU_DATA_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.integers(0, 256, (36, 16, 16, 3), dtype=np.uint8), rng.integers(0, 2, (36, 2)).astype(np.int8),
                      [f"s{i % 6}" for i in range(36)], (1, 12), "toy")
    calls = []

    def reader(model: str) -> experiments.Reader:
        def predict(fold, occ):
            calls.append((model, fold, occ.spec))
            return np.random.default_rng(len(calls)).random((len(occ.images), 2))  # a new answer on every run
        return experiments.Reader(predict, lambda fold: {"model": model, "fold": fold})

    conditions = {"clean": "clean", "p50": "patches:0.5"}
    first = experiments.evaluate_methods({"a": reader("A")}, ds, conditions, 8, folds=(1, 2))
    assert len(calls) == 4
    again = experiments.evaluate_methods({"a again": reader("A"), "b": reader("B")}, ds, conditions, 8, folds=(1, 2))
    assert [c[0] for c in calls[4:]] == ["B"] * 4  # A was read back, B run
    assert again["a again"]["p50"]["f1"] == first["a"]["p50"]["f1"]
    experiments.evaluate_methods({"a": reader("A")}, ds, {"p50": "patches:0.5"}, 8, folds=(1,), seed=7)
    assert calls[-1] == ("A", 1, "patches:0.5")  # other occlusions of the same faces: run anew


def test_conditions_table_rows_are_methods_and_columns_conditions():
    results = {"teacher": {"clean": {"avg_f1": 0.5}, "block 50%": {"avg_f1": 0.25}},
               "student": {"clean": {"avg_f1": 0.4}, "block 50%": {"avg_f1": float("nan")}}}
    md = metrics.conditions_table(results).splitlines()
    assert md[0] == "| Method | clean | block 50% |"
    assert md[2] == "| teacher | 50.0 | 25.0 |" and md[3] == "| student | 40.0 | – |"
    csv = metrics.conditions_table(results, fmt="csv").splitlines()
    assert csv == ["method,clean,block 50%", "teacher,0.5000,0.2500", "student,0.4000,nan"]
    with pytest.raises(ValueError, match="fmt"):
        metrics.conditions_table(results, fmt="html")


def test_read_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n\n{"b": [1, 2]}\n')
    assert metrics.read_jsonl(path) == [{"a": 1}, {"b": [1, 2]}]
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.warns(UserWarning, match="line 2: not a JSON record"):  # named and skipped (test_cache.py)
        assert metrics.read_jsonl(path) == [{"a": 1}]


def test_append_jsonl_starts_a_new_line_after_a_torn_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    metrics.append_jsonl(path, {"a": 1})
    with open(path, "a") as f:
        f.write('{"stage": "tra')  # a run killed mid-write leaves no final newline
    metrics.append_jsonl(path, {"b": 2})
    assert path.read_text() == '{"a": 1}\n{"stage": "tra\n{"b": 2}\n'
    with pytest.warns(UserWarning, match="line 2: not a JSON record"):
        assert metrics.read_jsonl(path) == [{"a": 1}, {"b": 2}]


def test_top_pairs_ranks_symmetrised_off_diagonal_cells():
    m = np.array([[0.9, 0.1, 0.4],
                  [0.3, 0.8, np.nan],
                  [0.2, np.nan, 0.7]])  # fmt: skip
    pairs = metrics.top_pairs(m, (6, 12, 4), k=5)
    assert [p for p, _ in pairs] == ["AU6+AU4", "AU6+AU12"]  # (0.4+0.2)/2 = 0.3 > (0.1+0.3)/2 = 0.2; nan pair left out
    assert [v for _, v in pairs] == pytest.approx([0.3, 0.2])
    assert len(metrics.top_pairs(m, (6, 12, 4), k=1)) == 1
    with pytest.raises(ValueError, match="expected \\(2, 2\\) for 2 AUs"):
        metrics.top_pairs(m, (6, 12))
