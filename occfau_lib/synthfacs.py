"""SynthFACS: a procedural face world with known action units, the repository's default data.

Taught in notebook 00. BP4D and DISFA are licensed and never shipped, so every notebook runs on faces
drawn here, in a world true to real faces where it matters: AUs are **local** (:data:`AU_BOXES`, tested
pixel-exactly), **graded** (:func:`au_visibility`), **correlated** (expression prototypes, so AU
relations carry information) and **confounded by identity** (:data:`LOOKALIKES`, so evaluation must be
subject-exclusive); each subject is filmed in one studio session (:func:`sample_session`) as an aligned
crop. This module samples and caches worlds and serves them as datasets; :mod:`occfau_lib.render` draws
the faces from the vectors of :mod:`occfau_lib.face_params`, whose one-face helpers are importable here.
"""
from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from .aus import ALL_AUS, au_set
from .cache import config_hash, data_root, load_or_build
from .config import DataConfig, Profile, get_profile
from .data import ArrayDataset
from .patches import box_mask
from .face_params import (AU_INDEX, ID_INDEX, IDENTITY_PARAMS, NU_INDEX, NUISANCE_PARAMS,  # noqa: F401
                          STUDIO_BACKGROUND, au_vector, make_identity, make_nuisance, neutral_identity)
from .render import render_face, render_faces  # noqa: F401

#: Bump when the renderer or the samplers change what they produce: cached datasets re-render.
RENDERER_VERSION = 3

#: Identities that look like an AU at rest (see ``sample_identities``).
LOOKALIKES = {
    "low_close_brows": {"brow_height": -2.4, "brow_gap": -2.2, "brow_thickness": 1.5},  # ~ AU4
    "upturned_mouth": {"mouth_curve": 2.4},  # ~ AU12
    "downturned_mouth": {"mouth_curve": -2.4},  # ~ AU15
    "narrow_eyes": {"eye_size": -2.4},  # ~ AU7
    "aged": {"age": 2.5},  # forehead lines ~ AU1/AU2, deep folds ~ AU10
}

#: Boxes (u0, u1, v0, v1) in the aligned crop's frame (the image spans [-1, 1]) holding every pixel
#: each AU can change on a frontal face with identity parameters in range (the locality test checks it).
AU_BOXES = {
    1: (-0.68, 0.68, -1.0, -0.26),
    2: (-0.74, 0.74, -1.0, -0.26),
    4: (-0.68, 0.68, -0.80, -0.14),
    6: (-0.80, 0.80, -0.48, 0.15),
    7: (-0.62, 0.62, -0.46, -0.14),
    9: (-0.24, 0.24, -0.36, 0.24),
    10: (-0.48, 0.48, -0.15, 0.62),
    12: (-0.58, 0.58, -0.20, 0.64),
    14: (-0.42, 0.42, 0.14, 0.64),
    15: (-0.46, 0.46, 0.30, 1.0),
    17: (-0.36, 0.36, 0.14, 0.96),
    23: (-0.36, 0.36, 0.26, 0.62),
    24: (-0.36, 0.36, 0.30, 0.62),
    25: (-0.36, 0.36, 0.26, 0.70),
    26: (-0.84, 0.84, 0.22, 1.0),
}

#: Expression prototypes: (name, weight, always-on AUs, optional {AU: probability}, one-of groups).
PROTOTYPES = (
    ("happiness", 0.20, (6, 12), {25: 0.5}, ()),
    ("sadness", 0.10, (1, 4, 15), {17: 0.5}, ()),
    ("surprise", 0.10, (1, 2), {}, ((25, 26),)),
    ("fear", 0.08, (1, 2, 4), {7: 0.5, 25: 0.5}, ()),
    ("anger", 0.12, (4, 7), {}, ((23, 24),)),
    ("disgust", 0.10, (9, 10), {17: 0.5}, ()),
    ("contempt", 0.07, (14,), {}, ()),
    ("neutral", 0.07, (), {}, ()),
    ("single", 0.16, (), {}, ()),  # one AU chosen uniformly at random
)
PRESENCE_THRESHOLD = 1.0  # an AU "occurs" from FACS intensity A (1) upwards, as in BP4D coding
SPONTANEOUS_RATE = 0.08  # chance per task that an AU outside the expression flickers on weakly


# --- Samplers: identities, expressions in onset-apex-offset sequences, nuisances ------------------
def sample_identities(n: int, rng: np.random.Generator, lookalike_rate: float = 0.3):
    """``n`` identities (n, P) and the name of each one's AU look-alike quirk ('' if none)."""
    ids = np.clip(rng.normal(size=(n, len(IDENTITY_PARAMS))), -2.5, 2.5).astype(np.float32)
    names = list(LOOKALIKES)
    quirks = []
    for i in range(n):
        quirk = names[rng.integers(len(names))] if rng.random() < lookalike_rate else ""
        for param, value in LOOKALIKES.get(quirk, {}).items():
            ids[i, ID_INDEX[param]] = value
        quirks.append(quirk)
    return ids, quirks


def sample_expression(rng: np.random.Generator) -> tuple[str, dict[int, float]]:
    """One expression: prototype name and apex intensity per active AU (1.5-5)."""
    weights = np.array([w for _, w, *_ in PROTOTYPES])
    name, _, core, optional, one_of = PROTOTYPES[rng.choice(len(PROTOTYPES), p=weights / weights.sum())]
    active = set(core)
    active |= {au for au, prob in optional.items() if rng.random() < prob}
    for group in one_of:
        active.add(group[rng.integers(len(group))])
        if rng.random() < 0.25:  # sometimes both members (e.g. surprise with 25 and 26)
            active |= set(group)
    if name == "single":
        active = {ALL_AUS[rng.integers(len(ALL_AUS))]}
    return name, {au: float(rng.uniform(1.5, 5.0)) for au in sorted(active)}


def _envelope(t, rng):
    """Onset-apex-offset curve in [0, 1] over normalised time t (F,)."""
    t0 = rng.uniform(-0.1, 0.3)
    t1 = t0 + rng.uniform(0.08, 0.25)
    t2 = t1 + rng.uniform(0.15, 0.6)
    t3 = t2 + rng.uniform(0.08, 0.25)
    up = np.clip((t - t0) / (t1 - t0), 0, 1)
    down = np.clip((t3 - t) / (t3 - t2), 0, 1)
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731  (smoothstep)
    return smooth(np.minimum(up, down))


def sample_sequence(frames: int, rng: np.random.Generator):
    """One task: (prototype names, AU intensities (frames, 15)) with onset-apex-offset curves: one
    expression, sometimes a second, each AU with its own timing and noise, plus weak spontaneous AUs."""
    names, apexes = [], []
    for _ in range(1 if rng.random() < 0.6 else 2):
        name, apex = sample_expression(rng)
        names.append(name)
        apexes.append(apex)
    apexes.append({au: float(rng.uniform(0.8, 3.0)) for au in ALL_AUS if rng.random() < SPONTANEOUS_RATE})
    t = np.linspace(0, 1, frames)
    out = np.zeros((frames, len(ALL_AUS)), np.float32)
    for apex in apexes:
        for au, peak in apex.items():
            curve = peak * _envelope(t, rng) + rng.normal(0, 0.15, frames)
            out[:, AU_INDEX[au]] = np.maximum(out[:, AU_INDEX[au]], np.clip(curve, 0, 5))
    return "+".join(names), out


def sample_session(rng: np.random.Generator) -> np.ndarray:
    """One subject's recording session (len(NUISANCE_PARAMS),): crop misalignment, lighting, sensor
    and backdrop tone, fixed for all their tasks as in BP4D/DISFA. Drawn per task instead, they let a
    model recognise the task, and so its expression, from the background: a shortcut."""
    out = np.zeros(len(NUISANCE_PARAMS), np.float32)
    out[NU_INDEX["scale"]] = rng.uniform(0.93, 1.07)
    out[NU_INDEX["tx"]], out[NU_INDEX["ty"]] = rng.normal(0, 0.02, 2)
    angle, elev = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.6)
    out[NU_INDEX["light_x"]], out[NU_INDEX["light_y"]] = elev * math.cos(angle), elev * math.sin(angle)
    out[NU_INDEX["light_strength"]] = rng.uniform(0.2, 1.0)
    out[NU_INDEX["noise"]] = rng.uniform(0.0, 0.03)
    out[NU_INDEX["blur"]] = rng.uniform(0.0, 0.9)
    top = np.asarray(STUDIO_BACKGROUND[0]) + rng.normal(0, 0.03) + rng.normal(0, 0.01, 3)  # session's tone
    out[NU_INDEX["bg_r"]:NU_INDEX["bg_b"] + 1] = top
    out[NU_INDEX["bg2_r"]:] = top * (np.asarray(STUDIO_BACKGROUND[1]) / STUDIO_BACKGROUND[0]) * rng.uniform(0.95, 1.05)
    return out


def sample_nuisances(frames: int, rng: np.random.Generator, base_pose: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Per-frame nuisances (frames, Q) of one task: smooth head motion around the subject's pose,
    their ``session`` with small jitter of framing and lighting."""
    t = np.linspace(0, 2 * math.pi, frames)
    out = np.repeat(session[None].astype(np.float32), frames, axis=0)
    drift = lambda amp: amp * np.sin(t * rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * math.pi))  # noqa: E731
    out[:, NU_INDEX["roll"]] = base_pose[0] + drift(2.5) + rng.normal(0, 0.7, frames)
    out[:, NU_INDEX["yaw"]] = np.clip(base_pose[1] + drift(0.25) + rng.normal(0, 0.03, frames), -1, 1)
    out[:, NU_INDEX["pitch"]] = np.clip(base_pose[2] + drift(0.2) + rng.normal(0, 0.03, frames), -1, 1)
    out[:, NU_INDEX["scale"]] += rng.normal(0, 0.01, frames)
    out[:, NU_INDEX["tx"]] += rng.normal(0, 0.01, frames)
    out[:, NU_INDEX["ty"]] += rng.normal(0, 0.01, frames)
    out[:, NU_INDEX["light_x"]] += rng.normal(0, 0.03, frames)
    out[:, NU_INDEX["light_y"]] += rng.normal(0, 0.03, frames)
    return out


# --- An unlabelled pretraining corpus, separate from every labelled world -------------------------
#: First word of every corpus face's seed: no labelled world draws from this stream.
CORPUS_STREAM = 0xC0_4B05


class FaceCorpus:
    """``n_faces`` distinct unlabelled faces rendered on demand: the analogue of the separate corpus
    a real MAE is pretrained on (ImageNet; face corpora for MAE-Face and FMAE). Face ``i`` is a fresh
    person drawn from ``default_rng((CORPUS_STREAM, seed, i))``: its pixels depend on ``(seed, i)``
    alone, and no labelled world shares its identity. :func:`mae.pretrain` streams ``batch_images``."""

    def __init__(self, n_faces: int, size: int = 64, seed: int = 0):
        if n_faces < 1:
            raise ValueError(f"a corpus needs at least one face; got n_faces={n_faces}")
        self.n_faces, self.size, self.seed = int(n_faces), int(size), int(seed)

    def __len__(self) -> int:
        return self.n_faces

    def __repr__(self) -> str:
        return f"FaceCorpus({self.n_faces} faces of {self.size}px, seed {self.seed})"

    def key(self) -> dict:
        """What identifies the corpus in the cache key of a model pretrained on it."""
        return {"corpus": {"n_faces": self.n_faces, "size": self.size, "seed": self.seed},
                "renderer": RENDERER_VERSION}

    def face_parameters(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(identity (P,), AU intensities (15,), nuisances (Q,), noise seed)`` of face ``i``."""
        if not 0 <= i < self.n_faces:
            raise IndexError(f"face {i} is outside the corpus of {self.n_faces}")
        rng = np.random.default_rng((CORPUS_STREAM, self.seed, int(i)))
        identity, _ = sample_identities(1, rng)
        _, seq = sample_sequence(8, rng)
        base_pose = np.array([rng.normal(0, 2.0), rng.normal(0, 0.12), rng.normal(0, 0.1)])
        nuisance = sample_nuisances(1, rng, base_pose, sample_session(rng))[0]
        return identity[0], seq[rng.integers(len(seq))], nuisance, int(rng.integers(2**62))

    def batch_images(self, rows) -> np.ndarray:
        """The faces of ``rows``, uint8 ``(len(rows), S, S, 3)``."""
        ids, aus, nus, seeds = zip(*(self.face_parameters(int(i)) for i in rows))
        return render_faces(np.stack(ids), np.stack(aus), np.stack(nus), np.array(seeds), self.size)


# --- Datasets: subjects x tasks x frames, cached under data/ by config hash -----------------------
@dataclass
class World:
    """Everything a SynthFACS dataset is made of, as flat per-image arrays (N = images)."""

    images: np.ndarray  # (N, S, S, 3) uint8
    intensities: np.ndarray  # (N, 15) float32, ALL_AUS order
    identities: np.ndarray  # (n_subjects, P) float32
    quirks: list  # (n_subjects,) look-alike quirk names
    subject: np.ndarray  # (N,) int subject index
    task: np.ndarray  # (N,) int task index
    frame: np.ndarray  # (N,) int frame index in its task
    prototype: list  # (N,) expression prototype names
    nuisances: np.ndarray  # (N, Q) float32
    seeds: np.ndarray  # (N,) int64


def render_batch_size(size: int) -> int:
    """Faces per ``render_faces`` call that keep the working set in CPU cache (~0.5 Mpixel;
    benchmarks/bench_render.py)."""
    return int(np.clip((1 << 19) // (size * size), 4, 256))


def generate_world(cfg: DataConfig, progress: bool = True) -> World:
    """Sample and render a whole SynthFACS world from its config (deterministic in ``cfg.seed``)."""
    rng = np.random.default_rng(cfg.seed)
    identities, quirks = sample_identities(cfg.n_subjects, rng)
    intens, nuis, subj, task, frame, proto = [], [], [], [], [], []
    for s in range(cfg.n_subjects):
        base_pose = np.array([rng.normal(0, 2.0), rng.normal(0, 0.12), rng.normal(0, 0.1)])
        session = sample_session(rng)
        for k in range(cfg.n_tasks):
            name, seq = sample_sequence(cfg.frames_per_task, rng)
            intens.append(seq)
            nuis.append(sample_nuisances(cfg.frames_per_task, rng, base_pose, session))
            subj += [s] * cfg.frames_per_task
            task += [k] * cfg.frames_per_task
            frame += list(range(cfg.frames_per_task))
            proto += [name] * cfg.frames_per_task
    intensities, nuisances = np.concatenate(intens), np.concatenate(nuis)
    subject = np.asarray(subj)
    seeds = cfg.seed * 1_000_003 + np.arange(len(subject), dtype=np.int64)
    images = np.empty((len(subject), cfg.img_size, cfg.img_size, 3), np.uint8)
    batch = render_batch_size(cfg.img_size)
    for i in tqdm(range(0, len(subject), batch), desc="rendering SynthFACS", disable=not progress):
        j = slice(i, i + batch)
        images[j] = render_faces(identities[subject[j]], intensities[j], nuisances[j], seeds[j], cfg.img_size)
    return World(images, intensities, identities, quirks, subject, np.asarray(task), np.asarray(frame), proto,
                 nuisances, seeds)



def _save_world(world: World, config: dict, path):
    with path.open("wb") as f:
        np.savez(
            f, config=np.array(repr(config)), images=world.images, intensities=world.intensities,
            identities=world.identities, quirks=np.array(world.quirks), subject=world.subject, task=world.task,
            frame=world.frame, prototype=np.array(world.prototype), nuisances=world.nuisances, seeds=world.seeds,
        )  # fmt: skip


def _load_world(path) -> tuple[World, dict]:
    with np.load(path, allow_pickle=False) as z:
        config = ast.literal_eval(str(z["config"]))
        world = World(z["images"], z["intensities"], z["identities"], z["quirks"].tolist(), z["subject"], z["task"],
                      z["frame"], z["prototype"].tolist(), z["nuisances"], z["seeds"])
    return world, config


def world_key(cfg: DataConfig) -> dict:
    """What identifies a world in the cache keys of everything computed from it (models, features)."""
    return {"synthfacs": asdict(cfg), "renderer": RENDERER_VERSION}


def load_world(cfg: DataConfig | None = None, progress: bool = True) -> World:
    """The world for ``cfg`` (default: the current profile's), from the cache or freshly rendered."""
    cfg = cfg or get_profile().data
    key = {"renderer": RENDERER_VERSION, **vars(cfg)}
    path = data_root() / "synthfacs" / f"synthfacs-{config_hash(key)}.npz"
    return load_or_build(path, key, lambda: generate_world(cfg, progress=progress), _save_world, _load_world)


def occurrence(intensities: np.ndarray) -> np.ndarray:
    """AU occurrence labels (int8, 1/0) from intensities: present from intensity 1 (FACS A)."""
    return (intensities >= PRESENCE_THRESHOLD).astype(np.int8)


def build_dataset(profile: Profile | str | None = None, aus="all", cfg: DataConfig | None = None,
                  progress: bool = True):
    """SynthFACS as an ``AUDataset`` (as BP4D/DISFA), labels for ``aus``; ``meta`` carries every
    image's intensities (ALL_AUS order), nuisances, task, frame and prototype."""
    if cfg is None:
        cfg = (profile if isinstance(profile, Profile) else get_profile(profile)).data
    aus = au_set(aus)
    world = load_world(cfg, progress=progress)
    names = np.array([f"S{i + 1:03d}" for i in range(cfg.n_subjects)])  # S001, ... like BP4D's F001
    cols = [AU_INDEX[a] for a in aus]
    meta = {"intensities": world.intensities, "nuisances": world.nuisances, "task": world.task,
            "frame": world.frame, "prototype": np.array(world.prototype), "seeds": world.seeds}
    return ArrayDataset(world.images, occurrence(world.intensities[:, cols]), names[world.subject], aus,
                        name="synthfacs", meta=meta)


# --- Ground truth: where each AU changes pixels ---------------------------------------------------
def au_region_maps(size: int = 64, n_identities: int = 16, seed: int = 0) -> dict[int, np.ndarray]:
    """Per AU, the mean absolute pixel change (size, size) in [0, 1] from a neutral face to the same
    face with that AU at intensity 5, over random frontal identities: exactly where the AU shows."""
    rng = np.random.default_rng(seed)
    ids, _ = sample_identities(n_identities, rng, lookalike_rate=0.0)
    nu = np.repeat(make_nuisance()[None], n_identities, 0)
    seeds = np.arange(n_identities)
    neutral = render_faces(ids, np.zeros((n_identities, len(ALL_AUS))), nu, seeds, size).astype(np.float32)
    maps = {}
    for au in ALL_AUS:
        aus = np.zeros((n_identities, len(ALL_AUS)), np.float32)
        aus[:, AU_INDEX[au]] = 5.0
        diff = np.abs(render_faces(ids, aus, nu, seeds, size).astype(np.float32) - neutral)
        maps[au] = diff.mean(axis=(0, 3)) / 255.0
    return maps


def au_visibility(size: int = 64, n_identities: int = 32, intensities=(1, 2, 3, 4, 5), seed: int = 0) -> np.ndarray:
    """How visible each AU is against identity, ``(len(ALL_AUS), len(intensities))``: the mean pixel
    change inside the AU's box when it goes from 0 to ``k``, divided by the between-identity spread
    of the neutral face there. Above 1, the AU changes its region more than changing the person
    does; the tests require >= 1.0 at intensity 5 and <= 0.5 at 1."""
    rng = np.random.default_rng(seed)
    ids, _ = sample_identities(n_identities, rng, lookalike_rate=0.0)
    nu = np.repeat(make_nuisance()[None], n_identities, 0)
    seeds = np.arange(n_identities)
    neutral = render_faces(ids, np.zeros((n_identities, len(ALL_AUS))), nu, seeds, size).astype(np.float32) / 255
    spread = neutral.std(axis=0)  # (S, S, 3) between identities
    out = np.zeros((len(ALL_AUS), len(intensities)))
    for row, au in enumerate(ALL_AUS):
        region = au_box_mask(au, size, margin_px=0)
        for col, k in enumerate(intensities):
            aus = np.zeros((n_identities, len(ALL_AUS)), np.float32)
            aus[:, AU_INDEX[au]] = k
            change = np.abs(render_faces(ids, aus, nu, seeds, size).astype(np.float32) / 255 - neutral)
            out[row, col] = change[:, region].mean() / spread[region].mean()
    return out


def au_box_mask(au: int, size: int = 64, margin_px: int = 1) -> np.ndarray:
    """Boolean (size, size) mask of ``AU_BOXES[au]`` for a frontal, unscaled face (+ margin)."""
    return box_mask(AU_BOXES[au], size, margin_px)
