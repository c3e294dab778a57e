"""Named size profiles: ``smoke`` (tests), ``demo`` (laptop CPU, the default) and ``paper`` (GPU).

One environment variable, ``OCCFAU_PROFILE``, picks the profile everywhere: notebooks, benchmarks
and the library read it through :func:`get_profile`. Each field says what it controls and, where
the value departs from the paper's setting, why.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

PROFILE_ENV = "OCCFAU_PROFILE"
DEFAULT_PROFILE = "demo"


@dataclass(frozen=True)
class DataConfig:
    """Size of the SynthFACS world a profile generates (hashed to key the dataset cache)."""

    img_size: int = 64  # paper: 224 (ViT-B/16); 64 px keeps CPU training to minutes
    n_subjects: int = 24  # BP4D has 41, DISFA 27; split into 3 subject-exclusive parts
    n_tasks: int = 8  # sequences per subject (BP4D: 8 elicitation tasks T1..T8)
    frames_per_task: int = 40  # frames sampled from each onset-apex-offset sequence
    seed: int = 0  # the world's seed: identities, expressions, nuisances

    @property
    def n_images(self) -> int:
        return self.n_subjects * self.n_tasks * self.frames_per_task


@dataclass(frozen=True)
class Profile:
    """Everything that changes with the machine: one frozen record per named profile."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 64  # paper (ME-GraphAU schedule): 64


PROFILES: dict[str, Profile] = {
    # Seconds: just enough data for every code path to run in the test suite.
    "smoke": Profile("smoke", DataConfig(img_size=64, n_subjects=6, n_tasks=4, frames_per_task=8), batch_size=16),
    # Minutes on a 2-core laptop: the numbers quoted in the notebooks and README.
    "demo": Profile("demo", DataConfig(img_size=64, n_subjects=24, n_tasks=8, frames_per_task=40)),
    # GPU scale: 224 px faces, BP4D-sized subject pool.
    "paper": Profile("paper", DataConfig(img_size=224, n_subjects=41, n_tasks=8, frames_per_task=100)),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named ``name``, else ``$OCCFAU_PROFILE``, else ``demo``.

    ``overrides`` replace top-level fields (``get_profile("smoke", batch_size=8)``).
    """
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (from {PROFILE_ENV}?); choose one of {sorted(PROFILES)}") from None
    return replace(profile, **overrides) if overrides else profile


def setup(seed: int = 0, profile: str | None = None) -> Profile:
    """The one setup call at the top of every notebook: seeds, deterministic kernels where
    PyTorch allows it, a consistent figure style, and a line saying what runs where."""
    import random

    import matplotlib
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    matplotlib.rcParams.update({"figure.dpi": 90, "axes.titlesize": 9, "axes.labelsize": 9,
                                "xtick.labelsize": 8, "ytick.labelsize": 8, "image.interpolation": "nearest"})
    prof = get_profile(profile)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"occfau profile '{prof.name}' ({prof.data.img_size} px, {prof.data.n_images} SynthFACS images) | "
          f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads | seed {seed}")
    return prof
