"""The models a profile uses and the table of methods: the measurements notebooks 02-05 and the benchmarks make.

The top floor of the library. The method modules (:mod:`mae`, :mod:`teacher`, :mod:`student`,
:mod:`distill`) hold models, losses and training; this module runs them the way the notebooks'
experiments do, and nothing in the library below imports it (the command line does):

- the models a profile uses, each through the one checkpoint-or-train cache:
  :func:`mae_for_profile`, :func:`teachers_for_profile`, :func:`students_for_profile`;
- the one evaluation harness, :func:`evaluate_conditions` (every method, every occlusion, the
  same subject-exclusive test faces and fixed occlusions), and notebook 04's table of methods,
  :func:`compare_methods` (with the :func:`latent_probe` and :func:`pixel_probe` baselines);
- notebook 02's data-regime study, :func:`data_regime`: when an MAE's latent beats a random
  encoder's.
What the latent itself shows (hiding, reconstructions, tokens, feature spaces) is :mod:`latent_space`.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import ViTMAEForPreTraining

from . import mae
from .cache import (array_fingerprint, checkpoint_or_train, config_dict as cache_config, config_hash, data_root,
                    load_npz, load_or_build, model_fingerprint, not_recorded, read_state, save_model, save_npz)
from .config import INFERENCE_BATCH, MAE_CONFIGS
from .distill import ABLATIONS, trained_student
from .mae import encode, pretrained_mae
from .mae_weights import WEIGHTS_ENV, load_mae
from .metrics import aggregate_folds, evaluate
from .occlusion import TEST_SEED, apply
from .patches import to_tensor
from .probe import LinearProbe, fit_probe, missing_tokens, pixel_features, probe_probs
from .record import RANDOM_STUDENT
from .student import Student
from .student import predict as student_predict
from .synthfacs import RENDERER_VERSION, FaceCorpus, load_world, world_key
from .teacher import Teacher, trained_teacher
from .teacher import predict as teacher_predict
from .train import Engine, new_history


# --------------------------------------------------------------------------------------------
# The models a profile uses (each cached: checkpoint or train)
# --------------------------------------------------------------------------------------------
def mae_for_profile(profile, device: str | Engine = "cpu", progress: bool = True,
                    resume: bool = True) -> tuple[ViTMAEForPreTraining, dict]:
    """The MAE the notebooks use: official weights from ``$OCCFAU_MAE_WEIGHTS`` when set, else the
    profile's MAE pretrained (cached after the first run) on its unlabelled face corpus
    (``profile.pretrain_corpus`` fresh faces, :class:`synthfacs.FaceCorpus`) or, when that is 0, on
    the profile's labelled SynthFACS world."""
    if os.environ.get(WEIGHTS_ENV):
        return load_mae(os.environ[WEIGHTS_ENV], profile.mae).to(Engine.of(device).device), new_history()
    if profile.pretrain_corpus:
        source = FaceCorpus(profile.pretrain_corpus, profile.data.img_size)
        images, key = source, source.key()
    else:
        images, key = load_world(profile.data, progress=progress).images, world_key(profile.data)
    return pretrained_mae(images, MAE_CONFIGS[profile.mae], profile.pretrain, key, device, progress, resume)


def teachers_for_profile(profile, ds, data_key: dict, device: str | Engine = "cpu",
                         progress: bool = True) -> dict[int, tuple[Teacher, dict]]:
    """``{fold: (teacher, history)}`` for every fold of the profile, each cached."""
    return {k: trained_teacher(ds, k, data_key, profile.teacher, profile.teacher_train, device, progress)
            for k in profile.folds}


def students_for_profile(profile, ds, data_key: dict, mae_model, teachers: dict, ablations=ABLATIONS, folds=None,
                         device: str | Engine = "cpu", progress: bool = True) -> dict[str, dict[int, Student]]:
    """``{ablation: {fold: student}}`` for ``profile.distill_folds`` (or ``folds``), each cached;
    ``teachers`` is ``{fold: teacher}``."""
    folds = profile.distill_folds if folds is None else folds
    return {name: {k: trained_student(ds, k, data_key, mae_model, teachers[k], replace(profile.distill, **change),
                                      device, progress)[0] for k in folds}
            for name, change in ablations.items()}


# --------------------------------------------------------------------------------------------
# The one evaluation harness, and the table of methods (notebooks 03-05, benchmarks)
# --------------------------------------------------------------------------------------------
#: Test faces decoded and occluded at once by :func:`evaluate_conditions` (a demo fold is one
#: chunk, so its occlusions are those of seed + fold; 4,096 faces at 224 px are 0.6 GB).
EVAL_CHUNK = 4096


class Reader:
    """A method whose answer is a pure function of the model it runs and the occluded faces:
    ``reader(fold, occluded) -> probs (M, n_au)`` like any ``predict`` of :func:`evaluate_methods`,
    plus ``key(fold)``, the identity of the fold's model. The harness caches a reader's
    probabilities per occluded batch (``data/cache/probs-<hash>.npz``, keyed by that identity and
    the content of the occluded batch), so the same model scored on the same occluded faces again
    is read, not rerun: notebook 04's teacher rows are notebook 03's teacher answers."""

    def __init__(self, predict, key):
        self.predict, self._key, self._keys = predict, key, {}

    def key(self, fold: int) -> dict:
        if fold not in self._keys:  # a fingerprint hashes the weights: once per fold
            self._keys[fold] = self._key(fold)
        return self._keys[fold]

    def __call__(self, fold: int, occluded) -> np.ndarray:
        return self.predict(fold, occluded)


def teacher_reader(teachers: dict) -> Reader:
    """``{fold: Teacher}`` as a :class:`Reader`: the fold's teacher reads the occluded pixels
    (``occluded.images``, occluder painted in)."""
    return Reader(lambda k, occ: teacher_predict(teachers[k], occ.images)["probs"],
                  lambda k: {"reader": "teacher", "model": model_fingerprint(teachers[k])})


def _answer(predict, fold: int, occluded) -> np.ndarray:
    """``predict(fold, occluded)``, through the probabilities cache when it is a :class:`Reader`
    (keyed by its model and the occluded batch's content: images and patch visibility)."""
    if not isinstance(predict, Reader):
        return predict(fold, occluded)
    config = {"reader": predict.key(fold), "images": array_fingerprint(occluded.images),
              "visible": array_fingerprint(occluded.visible)}
    path = data_root() / "cache" / f"probs-{config_hash(config)}.npz"
    return load_or_build(path, config, lambda: {"probs": predict(fold, occluded)}, save_npz, load_npz)["probs"]


def evaluate_conditions(predict, ds, conditions: dict[str, str], patch_size: int, folds=(1, 2, 3),
                        seed: int | None = None, test_stride: int = 1) -> dict[str, dict]:
    """The one evaluation harness of notebooks 03-05: every method, every occlusion condition,
    the same subject-exclusive test faces and the same fixed occlusions.

    predict: ``predict(fold, occluded) -> probs (M, n_au)``, where ``occluded`` is an
        :class:`occlusion.Occluded` batch (images with the occluder painted in, pixel mask,
        patch visibility): a CNN reads ``occluded.images``, the MAE student ``occluded.visible``.
        A :class:`Reader` (e.g. :func:`teacher_reader`) has its answers cached.
    conditions: ``{label: spec}`` (e.g. :func:`occlusion.protocol_conditions`).
    seed: the occlusion seed (default :data:`occlusion.TEST_SEED`); fold ``k`` uses ``seed + k``
        so the folds' masks differ but every method sees the same ones.
    test_stride: score every ``test_stride``-th test face only (consecutive video frames are
        near-duplicates; 2 halves the cost and barely moves F1).
    Returns ``{label: aggregate_folds(...)}``, with the per-fold results under ``"folds"``.
    """
    return evaluate_methods({"": predict}, ds, conditions, patch_size, folds, seed, test_stride)[""]


def evaluate_methods(predicts: dict, ds, conditions: dict[str, str], patch_size: int, folds=(1, 2, 3),
                     seed: int | None = None, test_stride: int = 1, progress: bool = False) -> dict[str, dict]:
    """:func:`evaluate_conditions` for several methods ``{name: predict}`` at once: each occluded
    batch is made once and read by every method (the occluders are drawn once, not once per
    method; the numbers are the same). Returns ``{name: {label: aggregate}}``."""
    seed = TEST_SEED if seed is None else seed
    per_condition = {name: {label: [] for label in conditions} for name in predicts}
    for k in folds:
        _, test = ds.fold(k)
        rows = np.arange(0, len(test), test_stride)
        chunks = [rows[i: i + EVAL_CHUNK] for i in range(0, len(rows), EVAL_CHUNK)]
        probs = {name: {label: [] for label in conditions} for name in predicts}
        steps = tqdm(total=len(chunks) * len(conditions), desc=f"evaluate fold {k}", disable=not progress)
        for c, chunk in enumerate(chunks):  # streamed: a BP4D fold never has to fit in memory
            images = test.batch_images(chunk)  # (M, S, S, 3) uint8
            for label, spec in conditions.items():
                occluded = apply(images, spec, patch_size, seed=seed + k + 1000 * c)
                for name, predict in predicts.items():
                    probs[name][label].append(_answer(predict, k, occluded))  # (M, n_au)
                steps.update()
        steps.close()
        for name in predicts:
            for label in conditions:
                per_condition[name][label].append(evaluate(test.labels[rows], np.concatenate(probs[name][label]),
                                                           test.aus))
    return {name: {label: {**aggregate_folds(r), "folds": r} for label, r in rows_.items()}
            for name, rows_ in per_condition.items()}


class SharedEncoding:
    """One pass of the frozen MAE encoder per occluded batch, read by every method of the table
    that needs it: the students and the latent probe at their block, reconstruct-then-detect at the
    last. :func:`evaluate_methods` hands the same :class:`occlusion.Occluded` to each method in
    turn, so the pass is made for the first reader and reused by the others. The batches are those
    of the readers' own loops (``batch_size`` rows),
    so every number is the same as without it (tested); only the depths asked for are kept.
    ``shared(occ, depth)`` -> ``[Encoded]`` per batch, as ``mae.encode(..., depth=depth)`` gives."""

    def __init__(self, mae_model: ViTMAEForPreTraining, depths=(), batch_size: int = INFERENCE_BATCH):
        self.model, self.batch_size = mae_model.eval(), batch_size
        self.depths = set(depths) | {None}
        self._occ, self._encoded = None, {}

    @torch.no_grad()
    def __call__(self, occ, depth: int | None = None) -> list[mae.Encoded]:
        if occ is not self._occ:  # a new batch: encode it once, keep the depths the readers use
            self._occ, self._encoded = occ, {d: [] for d in self.depths}
            device = next(self.model.parameters()).device
            for i in range(0, len(occ.images), self.batch_size):
                full = encode(self.model, to_tensor(occ.images[i: i + self.batch_size]).to(device),
                              torch.as_tensor(occ.visible[i: i + self.batch_size]), output_hidden_states=True)
                for d in self.depths:
                    self._encoded[d].append(full.at_depth(d))
        return self._encoded[depth]


PROBE_VERSION = 1  # bump when fit_probe's recipe changes: cached and shipped probes are refitted


def fitted_probe(key: dict, features, epochs: int, seed: int = 0, hidden: int = 0) -> LinearProbe:
    """:func:`probe.fit_probe` through the one checkpoint-or-train cache (kind ``"probe"``).

    ``key`` says what the features are (the reader, the model's fingerprint, the data, the fold);
    ``features()`` returns the training ``(x (N, D), labels (N, n_au))`` and is called only when
    the probe has to be fitted. Fitting is deterministic per seed, so a cached probe is the one
    the fit would give. Notebook 04's table probes are shipped (``make models``, in float32): a
    classroom reads them instead of encoding the training faces and fitting."""
    config = cache_config({"version": PROBE_VERSION, **key, "epochs": epochs, "seed": seed, "hidden": hidden})

    def fit(_partial) -> tuple[LinearProbe, dict]:
        start = time.perf_counter()
        x, y = features()
        model = fit_probe(x, y, epochs, seed=seed, hidden=hidden)
        return model, {"seconds": time.perf_counter() - start, "shape": [int(x.shape[1]), int(y.shape[1]), hidden]}

    def load(path) -> tuple[tuple[LinearProbe, dict], dict]:
        state = read_state(path)
        model = LinearProbe(*state["history"]["shape"])
        model.load_state_dict(state["model"])
        return (model.eval(), state["history"]), state["config"]

    model, _ = checkpoint_or_train("probe", config, fit, save_model, load)
    return model


def dataset_key(ds) -> dict:
    """What a dataset is, when no data key is given: content hashes of its images and labels."""
    return {"images": array_fingerprint(ds.images), "labels": array_fingerprint(ds.labels)}


def latent_probe(ds, fold: int, mae_model, depth: int | None, epochs: int, seed: int = 0, hidden: int = 0,
                 data_key: dict | None = None):
    """Baseline "linear probe on the MAE latent": a :class:`probe.LinearProbe` on the clean latent
    grid the student reads (block ``depth``'s tokens, flattened), trained on the fold's training
    faces. Returns ``predict(occluded, encoded=None) -> probs`` (``encoded``: the occluded faces'
    encoding at ``depth`` per :data:`~occfau_lib.config.INFERENCE_BATCH` rows, e.g. from
    :class:`SharedEncoding`); tokens of hidden patches are missing and mean-imputed
    (:func:`probe.probe_probs`), as in notebook 02.
    ``hidden`` > 0: an MLP probe. Cached (:func:`fitted_probe`), keyed by the encoder's weights,
    ``depth``, ``data_key`` (default :func:`dataset_key`) and the fold."""
    num_patches = mae_model.vit.embeddings.patch_embeddings.num_patches

    def grid(images: np.ndarray, visible: np.ndarray | None, encoded=None) -> np.ndarray:
        if encoded is None:
            patch = mae.extract_features(mae_model, images, visible, depth=depth)["patch"]  # (N, L, D), hidden = 0
        else:
            patch = torch.cat([e.on_grid(num_patches) for e in encoded]).numpy()  # (N, L, D), hidden = 0
        return patch.reshape(len(patch), -1)

    train, _ = ds.fold(fold)
    key = {"reads": "MAE latent", "mae": model_fingerprint(mae_model), "depth": depth,
           "data": data_key or dataset_key(ds), "fold": fold, "aus": list(ds.aus)}
    probe = fitted_probe(key, lambda: (grid(train.batch_images(np.arange(len(train))), None), train.labels), epochs,
                         seed, hidden)
    dim = mae_model.config.hidden_size
    return lambda occ, encoded=None: probe_probs(probe, grid(occ.images, occ.visible, encoded),
                                                 missing_tokens(occ.visible, dim))


def clean_probe_f1(ds, mae_model, depth: int | None, epochs: int, folds=(1,), seed: int = 0, hidden: int = 0,
                   data_key: dict | None = None) -> float:
    """Average F1 (%) on clean test faces of :func:`latent_probe` (linear, or an MLP of width
    ``hidden``) over the subject-exclusive ``folds``: how much AU information a latent holds (the
    claims' probe gain, notebook 02's data-regime study)."""
    probes = {k: latent_probe(ds, k, mae_model, depth, epochs, seed, hidden, data_key) for k in folds}
    result = evaluate_conditions(lambda k, occ: probes[k](occ), ds, {"clean": "clean"},
                                 mae_model.config.patch_size, folds)["clean"]
    return round(100 * result["avg_f1"], 2)


def with_seed(profile, seed: int):
    """``profile`` with the teacher's and the student's training seed set to ``seed`` (the MAE, the
    data and the test occlusions stay fixed): one draw of the seed-to-seed spread."""
    return replace(profile, teacher_train=replace(profile.teacher_train, seed=seed),
                   distill=replace(profile.distill, seed=seed))


def pixel_probe(ds, fold: int, epochs: int, seed: int = 0, data_key: dict | None = None):
    """Floor "logistic regression on raw pixels": a :class:`probe.LinearProbe` on the flattened
    pixels of the fold's clean training faces; at test time it reads the occluded image as is
    (occluder pixels included, as the teacher does). Returns ``predict(occluded) -> probs``.
    Cached like :func:`latent_probe`."""
    train, _ = ds.fold(fold)
    key = {"reads": "pixels", "data": data_key or dataset_key(ds), "fold": fold, "aus": list(ds.aus)}
    model = fitted_probe(key, lambda: (pixel_features(train.batch_images(np.arange(len(train)))), train.labels),
                         epochs, seed)
    return lambda occ: probe_probs(model, pixel_features(occ.images))


def method_models(profile, ds, data_key: dict, mae_model, folds, device: str | Engine = "cpu",
                  progress: bool = True) -> tuple[dict, dict, dict]:
    """The trained models of :func:`compare_methods`, each through the cache: ``(teachers,
    augmented teachers, students)`` as ``{fold: teacher}``, ``{fold: teacher}`` and
    ``{ablation: {fold: student}}``. The augmented teacher is fine-tuned from the trained one with
    occlusion augmentation: half its epochs, a third of its learning rate, every face occluded by
    the training mixture [ours]. Besides the KD ablations, ``"student, random encoder"`` is the
    node + edge student trained by the identical recipe on :func:`mae.random_encoder` (claim (a)'s control)."""
    teachers = {k: trained_teacher(ds, k, data_key, profile.teacher, profile.teacher_train, device, progress)[0]
                for k in folds}
    base = profile.teacher_train
    occ_cfg = replace(base, occlusion_patch=mae_model.config.patch_size, epochs=max(1, base.epochs // 2),
                      lr=base.lr / 3, warmup_epochs=0)
    augmented = {k: trained_teacher(ds, k, data_key, profile.teacher, occ_cfg, device, progress, init=teachers[k])[0]
                 for k in folds}
    students = students_for_profile(profile, ds, data_key, mae_model, teachers, folds=folds, device=device,
                                    progress=progress)
    students[RANDOM_STUDENT] = students_for_profile(profile, ds, data_key, mae.random_encoder(mae_model), teachers,
                                                    {"": {}}, folds, device, progress)[""]
    return teachers, augmented, students


def method_probes(profile, ds, data_key: dict, mae_model, folds, seed: int = 0) -> tuple[dict, dict]:
    """The probes of :func:`compare_methods`, each through the cache: ``({fold: latent probe},
    {fold: pixel probe})`` as ``predict`` functions (:func:`latent_probe` at the student's block,
    :func:`pixel_probe`)."""
    latent = {k: latent_probe(ds, k, mae_model, profile.distill.depth, profile.probe_epochs, seed, data_key=data_key)
              for k in folds}
    return latent, {k: pixel_probe(ds, k, profile.probe_epochs, seed, data_key) for k in folds}


def compare_methods(profile, ds, data_key: dict, mae_model, conditions: dict[str, str], folds=None,
                    test_stride: int | None = None, device: str | Engine = "cpu", progress: bool = True, seed: int = 0,
                    floors: bool = True, models: tuple[dict, dict, dict] | None = None) -> dict[str, dict]:
    """The table of notebook 04: every method under every occlusion condition, through the one
    harness :func:`evaluate_conditions` (same test faces, same fixed occlusions).

    Methods: the teacher (its "clean" column is the upper reference), the teacher fine-tuned
    with occlusion augmentation (from the trained teacher, half its epochs at a third of its
    learning rate, every face occluded by the training mixture [ours]; docs/decisions.md says why
    not from scratch), reconstruct-then-detect (the
    MAE paints the hidden patches, the teacher reads the result), a linear probe on the MAE
    latent, the four student ablations and the student on a random encoder; with ``floors``, the two rows every method must beat:
    always answering "present" and a logistic regression on raw pixels. Everything trained is
    cached per fold; ``seed`` is the teachers' and students' training seed (:func:`with_seed`);
    ``models``: :func:`method_models`' result, if the caller has it; ``test_stride``: every n-th test
    frame (default: the profile's). The frozen encoder runs once per occluded batch for all the
    methods that read it (:class:`SharedEncoding`).
    Returns ``{method: {condition: aggregate}}``.
    """
    profile = with_seed(profile, seed) if seed else profile
    folds = profile.distill_folds if folds is None else folds
    test_stride = profile.test_stride if test_stride is None else test_stride
    p = mae_model.config.patch_size
    teachers, augmented, students = models or method_models(profile, ds, data_key, mae_model, folds, device, progress)
    depth = profile.distill.depth
    probes, pixels = method_probes(profile, ds, data_key, mae_model, folds, seed)
    shared = SharedEncoding(mae_model, {depth} | {s.input_depth for per_fold in students.values() for s in per_fold.values()})
    encodings = {name: shared for name in students}  # the random-encoder student reads its own encoder
    if RANDOM_STUDENT in students:
        encodings[RANDOM_STUDENT] = SharedEncoding(next(iter(students[RANDOM_STUDENT].values())).mae, {depth})
    methods = {}
    if floors:
        methods["chance: always present"] = lambda k, occ: np.ones((len(occ.images), len(ds.aus)), np.float32)
        methods["pixels + logistic regression"] = lambda k, occ: pixels[k](occ)
    methods.update({
        "teacher": teacher_reader(teachers),
        "teacher + occlusion augmentation": teacher_reader(augmented),
        "reconstruct-then-detect": lambda k, occ: teacher_predict(
            teachers[k], mae.reconstruct_images(mae_model, occ.images, occ.visible, encoded=shared(occ)))["probs"],
        "linear probe on MAE latent": lambda k, occ: probes[k](occ, shared(occ, depth)),
    })
    for name, per_fold in students.items():
        methods[name] = lambda k, occ, per_fold=per_fold, enc=encodings[name]: student_predict(
            per_fold[k], occ.images, occ.visible, encoded=enc(occ, per_fold[k].input_depth))["probs"]
    return evaluate_methods(methods, ds, conditions, p, folds, test_stride=test_stride, progress=progress)


REGIME_VERSION = 1  # bump when data_regime's measurement changes: cached and shipped results are remade


def data_regime(profile, ds, corpus_sizes=None, steps=None, folds=(1,), hidden: int = 256,
                seed: int = 0, progress: bool = True, data_key: dict | None = None) -> dict:
    """When does an MAE's latent beat a random encoder's? Notebook 02's data-regime study.

    For every corpus size ``N`` and step budget ``T``, the profile's MAE is pretrained on an
    unlabelled :class:`synthfacs.FaceCorpus` of ``N`` fresh faces (never the labelled world's
    people) for ``T`` optimiser steps (``T x batch / N`` epochs; cached), then probed on the
    labelled world's subject-exclusive ``folds`` (clean faces, the student's block) with a linear
    probe and an MLP probe of width ``hidden``; the same probes read a randomly initialised
    encoder of the same shape. Returns ``{"runs": [{corpus, steps, linear, mlp} ...], "random":
    {linear, mlp}}``, average F1 in percent; the gain over random is the claim (a) quantity.
    ``corpus_sizes`` / ``steps`` default to the profile's ``regime_corpora`` / ``regime_steps``.

    The result itself goes through the one checkpoint-or-train cache (kind ``"regime"``, keyed by
    every setting above, the labelled data (``data_key``, else a fingerprint of its images and
    labels), :data:`REGIME_VERSION` and the versions of the MAE and probe code), and ``make
    models`` ships it: six MAE pretrainings are 20 of the demo's minutes, and a classroom reads the
    same numbers from a 1 kB file. The MAEs it pretrains are not shipped (they are not recorded for
    ``make models``).
    """
    corpus_sizes = tuple(profile.regime_corpora if corpus_sizes is None else corpus_sizes)
    steps = tuple(profile.regime_steps if steps is None else steps)
    batch = profile.pretrain.batch_size
    cfg = MAE_CONFIGS[profile.mae]
    for n in corpus_sizes:
        for t in steps:
            if n > t * batch or (t * batch) % n:
                raise ValueError(f"a corpus of {n} faces does not divide {t} steps of {batch} faces into whole "
                                 "epochs; choose sizes that divide steps x batch")
    data_key = data_key or dataset_key(ds)
    # "renderer": the unlabelled FaceCorpus faces the MAEs pretrain on, which data_key does not describe;
    # "mae_version" / "probe_version": the code of the pretraining and of the probes the scores come from
    key = {"version": REGIME_VERSION, "renderer": RENDERER_VERSION, "mae_version": mae.MAE_VERSION,
           "probe_version": PROBE_VERSION, "data": data_key, "aus": list(ds.aus),
           "mae": cfg, "pretrain": profile.pretrain, "corpora": list(corpus_sizes), "steps": list(steps),
           "folds": list(folds), "hidden": hidden, "seed": seed, "depth": profile.distill.depth,
           "probe_epochs": profile.probe_epochs}

    def probed(model) -> dict:
        return {name: clean_probe_f1(ds, model, profile.distill.depth, profile.probe_epochs, folds, seed, width, data_key)
                for name, width in (("linear", 0), ("mlp", hidden))}

    def measure(_partial) -> tuple[dict, dict]:
        start = time.perf_counter()
        torch.manual_seed(seed)
        runs = []
        with not_recorded():  # the study's MAEs and probes stay in the local cache: make models ships the result only
            for n in corpus_sizes:
                for t in steps:
                    corpus = FaceCorpus(n, ds.image_size, seed)
                    pretrain = replace(profile.pretrain, epochs=t * batch // n, warmup_epochs=0)
                    model, _ = pretrained_mae(corpus, cfg, pretrain, corpus.key(), progress=progress)
                    runs.append([n, t, *probed(model).values()])
            random = list(probed(mae.random_encoder(cfg, seed)).values())
        scores = {"runs": torch.tensor(runs, dtype=torch.float64),  # (R, 4): corpus, steps, linear, mlp
                  "random": torch.tensor(random, dtype=torch.float64)}
        return scores, {"seconds": time.perf_counter() - start}

    def save(obj: tuple[dict, dict], config: dict, path) -> None:
        torch.save({"model": obj[0], "history": obj[1], "config": config}, path)

    def load(path) -> tuple[tuple[dict, dict], dict]:
        state = read_state(path)
        return ({k: v.double() for k, v in state["model"].items()}, state.get("history", {})), state["config"]

    result, _ = checkpoint_or_train("regime", cache_config(key), measure, save, load)
    runs = [{"corpus": int(n), "steps": int(t), "linear": round(float(lin), 2), "mlp": round(float(mlp), 2)}
            for n, t, lin, mlp in result["runs"].tolist()]
    lin, mlp = result["random"].tolist()
    return {"runs": runs, "random": {"linear": round(lin, 2), "mlp": round(mlp, 2)}, "folds": list(folds)}
