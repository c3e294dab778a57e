"""The models a profile uses and the table of methods: the measurements of notebooks 02-05 and the benchmarks.

The top floor of the library (nothing below imports it): the models a profile uses, each through
the checkpoint-or-train cache; the one evaluation harness, :func:`evaluate_conditions`; notebook
04's table of methods, :func:`compare_methods`.
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
                    load_npz, load_or_build, model_fingerprint, read_state, save_model, save_npz)
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
from .synthfacs import FaceCorpus, load_world, world_key
from .teacher import Teacher, trained_teacher
from .teacher import predict as teacher_predict
from .train import Engine, new_history


def mae_for_profile(profile, device: str | Engine = "cpu", progress: bool = True,
                    resume: bool = True) -> tuple[ViTMAEForPreTraining, dict]:
    """The notebooks' MAE: official weights from ``$OCCFAU_MAE_WEIGHTS`` when set, else the
    profile's MAE pretrained (cached) on ``profile.pretrain_corpus`` fresh faces or, when that is
    0, on the labelled SynthFACS world."""
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
    """``{ablation: {fold: student}}`` for ``folds`` (default ``profile.distill_folds``), each cached."""
    folds = profile.distill_folds if folds is None else folds
    return {name: {k: trained_student(ds, k, data_key, mae_model, teachers[k], replace(profile.distill, **change),
                                      device, progress)[0] for k in folds}
            for name, change in ablations.items()}


#: Test faces decoded and occluded at once by :func:`evaluate_methods` (4,096 faces at 224 px: 0.6 GB).
EVAL_CHUNK = 4096


class Reader:
    """A ``predict(fold, occluded)`` whose answer depends only on the fold's model, identified by
    ``key(fold)``: the harness caches its probabilities per occluded batch, so the same model on
    the same faces is read, not rerun (notebook 04's teacher rows are notebook 03's answers)."""

    def __init__(self, predict, key):
        self.predict, self._key, self._keys = predict, key, {}

    def key(self, fold: int) -> dict:
        if fold not in self._keys:  # a fingerprint hashes the weights: once per fold
            self._keys[fold] = self._key(fold)
        return self._keys[fold]

    def __call__(self, fold: int, occluded) -> np.ndarray:
        return self.predict(fold, occluded)


def teacher_reader(teachers: dict) -> Reader:
    """``{fold: Teacher}`` as a :class:`Reader` of the occluded pixels."""
    return Reader(lambda k, occ: teacher_predict(teachers[k], occ.images)["probs"],
                  lambda k: {"reader": "teacher", "model": model_fingerprint(teachers[k])})


def _answer(predict, fold: int, occluded) -> np.ndarray:
    if not isinstance(predict, Reader):
        return predict(fold, occluded)
    config = {"reader": predict.key(fold), "images": array_fingerprint(occluded.images),
              "visible": array_fingerprint(occluded.visible)}
    path = data_root() / "cache" / f"probs-{config_hash(config)}.npz"
    return load_or_build(path, config, lambda: {"probs": predict(fold, occluded)}, save_npz, load_npz)["probs"]


def evaluate_conditions(predict, ds, conditions: dict[str, str], patch_size: int, folds=(1, 2, 3),
                        seed: int | None = None, test_stride: int = 1) -> dict[str, dict]:
    """The one evaluation harness: every method, every occlusion condition, the same
    subject-exclusive test faces and the same fixed occlusions.

    ``predict(fold, occluded) -> probs (M, n_au)`` reads an :class:`occlusion.Occluded` batch (a CNN
    its ``images``, the student its ``visible`` patches). ``conditions``: ``{label: spec}``. Fold
    ``k`` is occluded with ``seed + k`` (default :data:`occlusion.TEST_SEED`); ``test_stride``
    scores every n-th test face. Returns ``{label: aggregate_folds(...)}`` with ``"folds"``.
    """
    return evaluate_methods({"": predict}, ds, conditions, patch_size, folds, seed, test_stride)[""]


def evaluate_methods(predicts: dict, ds, conditions: dict[str, str], patch_size: int, folds=(1, 2, 3),
                     seed: int | None = None, test_stride: int = 1, progress: bool = False) -> dict[str, dict]:
    """:func:`evaluate_conditions` for ``{name: predict}``, each occluded batch made once and read by
    every method. Returns ``{name: {label: aggregate}}``."""
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
    """One pass of the frozen MAE encoder per occluded batch, shared by every method that reads it.
    ``shared(occ, depth)`` -> ``[Encoded]`` per batch of ``batch_size``, as ``mae.encode(...,
    depth=depth)`` gives; only the ``depths`` asked for are kept. The numbers are the same as without it."""

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
    """:func:`probe.fit_probe` through the checkpoint-or-train cache (kind ``"probe"``): ``key`` says
    what the features are, ``features()`` returns ``(x (N, D), labels (N, n_au))`` when a fit is needed."""
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
    """Content hashes of a dataset's images and labels (when no data key is given)."""
    return {"images": array_fingerprint(ds.images), "labels": array_fingerprint(ds.labels)}


def latent_probe(ds, fold: int, mae_model, depth: int | None, epochs: int, seed: int = 0, hidden: int = 0,
                 data_key: dict | None = None):
    """A cached probe (linear, or an MLP of width ``hidden``) on the clean latent grid at block
    ``depth``, trained on the fold's training faces. Returns ``predict(occluded, encoded=None)``
    (``encoded``: from :class:`SharedEncoding`); hidden patches' tokens are mean-imputed."""
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


def with_seed(profile, seed: int):
    """``profile`` with the teacher's and the student's training seed set to ``seed``."""
    return replace(profile, teacher_train=replace(profile.teacher_train, seed=seed),
                   distill=replace(profile.distill, seed=seed))


def pixel_probe(ds, fold: int, epochs: int, seed: int = 0, data_key: dict | None = None):
    """The floor: a cached logistic regression on the raw pixels of the fold's clean training
    faces, reading occluded images as they are. Returns ``predict(occluded)``."""
    train, _ = ds.fold(fold)
    key = {"reads": "pixels", "data": data_key or dataset_key(ds), "fold": fold, "aus": list(ds.aus)}
    model = fitted_probe(key, lambda: (pixel_features(train.batch_images(np.arange(len(train)))), train.labels),
                         epochs, seed)
    return lambda occ: probe_probs(model, pixel_features(occ.images))


def method_models(profile, ds, data_key: dict, mae_model, folds, device: str | Engine = "cpu",
                  progress: bool = True) -> tuple[dict, dict, dict]:
    """The trained models of :func:`compare_methods`, each cached: ``({fold: teacher}, {fold:
    augmented teacher}, {ablation: {fold: student}})``. The augmented teacher is fine-tuned from the
    trained one, half its epochs at a third of its rate, every face occluded [ours]; the students
    include ``"student, random encoder"``, the same recipe on :func:`mae.random_encoder`."""
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
    """``({fold: latent probe}, {fold: pixel probe})`` of :func:`compare_methods`, each cached."""
    latent = {k: latent_probe(ds, k, mae_model, profile.distill.depth, profile.probe_epochs, seed, data_key=data_key)
              for k in folds}
    return latent, {k: pixel_probe(ds, k, profile.probe_epochs, seed, data_key) for k in folds}


def compare_methods(profile, ds, data_key: dict, mae_model, conditions: dict[str, str], folds=None,
                    test_stride: int | None = None, device: str | Engine = "cpu", progress: bool = True, seed: int = 0,
                    floors: bool = True, models: tuple[dict, dict, dict] | None = None) -> dict[str, dict]:
    """Notebook 04's table: every method under every condition through :func:`evaluate_methods`.

    The teacher, the occlusion-augmented teacher, reconstruct-then-detect (the MAE paints the
    hidden patches, the teacher reads them), the latent probe, the student ablations and the
    student on a random encoder; with ``floors``, "always present" and pixels + logistic
    regression. ``seed``: the training seed (:func:`with_seed`); ``models``: :func:`method_models`'
    result if the caller has it. Returns ``{method: {condition: aggregate}}``.
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
