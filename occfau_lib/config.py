"""Named size profiles: ``smoke`` (tests), ``demo`` (laptop CPU, the default) and ``paper`` (GPU).

``$OCCFAU_PROFILE`` picks the profile everywhere (:func:`get_profile`). Each field says what it
controls and, where it departs from the paper, why.
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

    def __post_init__(self):
        small = {k: v for k, v in vars(self).items() if k != "seed" and v < 1}
        if small:
            raise ValueError(f"sizes must be >= 1; got {small}")

    @property
    def n_images(self) -> int:
        return self.n_subjects * self.n_tasks * self.frames_per_task


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of a ViT-MAE (encoder + lightweight decoder)."""

    img_size: int = 64  # paper: 224
    patch_size: int = 8  # paper: 16; an 8x8 grid of 8 px patches at 64 px
    hidden_size: int = 192  # paper: 768 (ViT-B)
    num_layers: int = 6  # paper: 12
    num_heads: int = 3  # paper: 12
    decoder_hidden_size: int = 128  # paper: 512
    decoder_layers: int = 2  # paper: 8
    decoder_heads: int = 4  # paper: 16
    mask_ratio: float = 0.75  # MAE's default random masking ratio during pretraining
    norm_pix_loss: bool = False  # MAE paper: True (per-patch normalised target) for best features

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2


MAE_CONFIGS = {
    # In-repo MAE for the embedded SynthFACS world: trains on a CPU in minutes.
    "tiny": MAEConfig(),
    # ViT-B/16 at 224 px with MAE's 512-wide, 8-layer decoder: takes the official weights.
    "paper": MAEConfig(224, 16, 768, 12, 12, 512, 8, 16, 0.75, True),
}


@dataclass(frozen=True)
class Schedule:
    """What the three trainings share: AdamW, linear warm-up then cosine decay per step
    (:func:`train.lr_at`). Subclasses add ``lr`` and their own settings; impossible values are
    refused when the config is made."""

    epochs: int = 20  # ME-GraphAU: 20
    batch_size: int = 64  # ME-GraphAU: 64
    weight_decay: float = 5e-4  # ME-GraphAU
    warmup_epochs: float = 0.0  # ME-GraphAU: none; short from-scratch runs use a little
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if not self.lr >= 0:  # 0 is allowed: a frozen run (tests use it)
            raise ValueError(f"the learning rate must be >= 0; got {self.lr}")
        if self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ValueError(f"warmup_epochs and weight_decay must be >= 0; got {self.warmup_epochs}, "
                             f"{self.weight_decay}")


@dataclass(frozen=True)
class PretrainConfig(Schedule):
    """MAE pretraining schedule."""

    epochs: int = 30  # MAE paper: 800-1600 on ImageNet; SynthFACS is small and simple
    batch_size: int = 64  # MAE paper: 4096
    base_lr: float = 1.5e-4  # MAE paper: lr = base_lr * batch_size / 256; CPU profiles use 10x (short runs)
    weight_decay: float = 0.05  # MAE paper
    warmup_epochs: float = 2  # MAE paper: 40

    @property
    def lr(self) -> float:
        return self.base_lr * self.batch_size / 256


@dataclass(frozen=True)
class TeacherConfig:
    """Architecture of the ME-GraphAU-style AU-relation-graph teacher (:mod:`occfau_lib.teacher`)."""

    backbone: str = "resnet18"  # timm model; paper: resnet50 (ME-GraphAU also reports Swin-B)
    feature_stage: int = 3  # timm feature stage read as tokens: stride 16 -> 4x4 tokens at 64 px
    width: int = 64  # C, node/edge feature width; ME-GraphAU: 512 (ResNet-50), 128 (ResNet-18)
    k_neighbours: int = 4  # top-K of ANFL's facial graph; ME-GraphAU: 4 on BP4D, 3 on DISFA
    backbone_weights: str = ""  # local timm weights file for the backbone ("" = train from scratch)


TEACHER_CONFIGS = {
    # Small ResNet-18 trunk (two stages) for 64-px SynthFACS faces: minutes on a CPU.
    "tiny": TeacherConfig(),
    # ME-GraphAU's ResNet-50 setting: the 7x7 map of the last stage at 224 px, 512-wide features.
    "paper": TeacherConfig("resnet50", 4, 512, 4),
    # ME-GraphAU's DISFA setting: K = 3 neighbours in the facial graph (BP4D: 4).
    "paper-disfa": TeacherConfig("resnet50", 4, 512, 3),
}


@dataclass(frozen=True)
class TeacherTrainConfig(Schedule):
    """Teacher schedule: ME-GraphAU's (the :class:`Schedule` defaults), scaled for CPU profiles."""

    lr: float = 1e-4  # ME-GraphAU: 1e-4 (ImageNet-pretrained backbone); CPU profiles train from scratch, higher
    edge_weight: float = 0.05  # lambda of the edge co-occurrence loss: 0.05 BP4D, 0.01 DISFA
    augment: bool = True  # random shift (pad 1/16 + crop) and horizontal flip, as ME-GraphAU's crop + flip
    occlusion_patch: int = 0  # > 0: occlude every training face by the training mixture on this patch grid
    #                           (the MAE's): the "teacher + occlusion augmentation" baseline of notebook 04


@dataclass(frozen=True)
class DistillConfig(Schedule):
    """The method's student: a mapping network on frozen MAE latents, distilled from the teacher.

    Loss = L_WA(ground truth) + node_weight x node KD + edge_weight x edge KD
    + edge_ce_weight x edge co-occurrence CE (docs/method-notes.md; the weights are ours: alpha = beta = 1).
    """

    depth: int | None = None  # MAE blocks the student reads (None = all); tiny MAE: 3 of 6 (student.py)
    mapping: str = "linear"  # "linear": position-specific linear map; "attention": AU queries on the visible tokens
    finetune_blocks: int | None = None  # the top blocks of the `depth` read that train with the mapping; None: frozen
    layer_decay: float | None = None  # fine-tuned block k below the top learns at lr x decay**k (MAE); None: 0.75
    node_relu: bool | None = None  # linear mapping: node features through a ReLU, as the teacher's (None: off)
    rank: int = 32  # per-token projection of the mapping network
    edge_rank: int = 256  # bottleneck of the edge map
    node_weight: float = 1.0  # alpha: node-level KD; 0 switches it off (ablation)
    edge_weight: float = 1.0  # beta: edge-level KD; 0 switches it off (ablation)
    edge_ce_weight: float = 0.05  # lambda: ME-GraphAU's edge loss on the student's own edges (BP4D value)
    normalize: bool = False  # L2-normalise features before the MSE (False: plain MSE; docs/decisions.md)
    clean_rate: float = 0.25  # share of clean faces in the training occlusion mixture [ours]
    lr: float = 1e-4  # the teacher's schedule (ME-GraphAU, the Schedule defaults): 20 epochs, batch 64
    augment: bool = False  # shift + flip before occluding; off: the position-specific linear mapping
    #                        generalises worse with it (docs/decisions.md) [ours]

    def __post_init__(self):
        super().__post_init__()
        if self.mapping not in ("linear", "attention"):
            raise ValueError(f"mapping must be 'linear' or 'attention'; got {self.mapping!r}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be >= 1 (MAE blocks read) or null (all); got {self.depth}")
        if self.finetune_blocks is not None and not 0 <= self.finetune_blocks <= (self.depth or self.finetune_blocks):
            raise ValueError(f"finetune_blocks must be in 0..depth ({self.depth}) or null (frozen); "
                             f"got {self.finetune_blocks}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1] or null; got {self.layer_decay}")


#: Faces per forward pass when a trained model only reads; answers do not depend on it (docs/decisions.md).
INFERENCE_BATCH = 64


@dataclass(frozen=True)
class EngineConfig:
    """How training uses a GPU (:class:`occfau_lib.train.Engine`); only a non-default precision enters a model's key."""

    precision: str = "fp32"  # "bf16": bfloat16 autocast of the forward passes (paper presets, on CUDA)
    workers: int = 0  # data-loading processes (pinned memory on CUDA); 0: load in the training process
    channels_last: bool = True  # the teacher's CNN in channels-last memory format on CUDA (faster convs)

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16'; got {self.precision!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0; got {self.workers}")


@dataclass(frozen=True)
class Profile:
    """Everything that changes with the machine: one frozen record per named profile."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 64  # paper (ME-GraphAU schedule): 64
    mae: str = "tiny"  # key of MAE_CONFIGS; paper: "paper" (ViT-B/16, official weights)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    # Faces of the unlabelled corpus the MAE pretrains on (synthfacs.FaceCorpus: fresh people, a real
    # MAE's separate corpus); 0 = the labelled world's own images (as a run on real data does)
    pretrain_corpus: int = 0
    # The data-regime study's corpus sizes x pretraining step budgets (benchmarks/bench_regime.py)
    regime_corpora: tuple[int, ...] = (1024, 4096, 16384)
    regime_steps: tuple[int, ...] = (256, 1024)
    probe_epochs: int = 30  # linear-probe epochs (MAE paper: 90 on ImageNet)
    teacher: str = "tiny"  # key of TEACHER_CONFIGS
    teacher_train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    folds: tuple[int, ...] = (1, 2, 3)  # subject-exclusive folds trained and evaluated
    distill: DistillConfig = field(default_factory=DistillConfig)
    distill_folds: tuple[int, ...] = (1, 2, 3)  # folds notebook 04 trains students for (4 per fold)
    engine: EngineConfig = field(default_factory=EngineConfig)  # precision, loader workers (GPU runs)
    # Notebooks 03-04 score every test_stride-th frame of each test video; 1 = every frame (the papers'
    # protocol, always used by the command line)
    test_stride: int = 1
    probe_stride: int = 1  # notebook 02 encodes and probes every probe_stride-th frame (probe.frame_subset)

    def __post_init__(self):
        for name, what in (("test_stride", "every n-th test frame"), ("probe_stride", "every n-th frame probed")):
            if getattr(self, name) < 1:
                raise ValueError(f"profile {self.name!r}: {name} must be >= 1 ({what}); got {getattr(self, name)}")


#: Profile fields that choose only which folds, frames and study points the notebooks run, never how a
#: model is trained or a face scored: left out of the claims benchmark's run key (docs/decisions.md).
NOTEBOOK_SETTINGS = ("folds", "distill_folds", "test_stride", "probe_stride", "regime_corpora", "regime_steps")


PROFILES: dict[str, Profile] = {
    # Seconds: just enough data for every code path to run in the test suite.
    "smoke": Profile("smoke", DataConfig(img_size=64, n_subjects=6, n_tasks=4, frames_per_task=8), batch_size=16,
                     pretrain=PretrainConfig(epochs=1, batch_size=32, base_lr=1.5e-3, warmup_epochs=0), pretrain_corpus=256,
                     regime_corpora=(64, 128), regime_steps=(4, 8), probe_epochs=3,
                     teacher_train=TeacherTrainConfig(epochs=1, batch_size=16, lr=3e-3),
                     distill=DistillConfig(depth=1, epochs=1, batch_size=16, lr=3e-3), distill_folds=(1,), test_stride=2),
    # Minutes on a 2-core laptop: the numbers quoted in the notebooks and README (docs/decisions.md).
    "demo": Profile("demo", DataConfig(img_size=64, n_subjects=96, n_tasks=8, frames_per_task=10),
                    pretrain=PretrainConfig(epochs=2, batch_size=64, base_lr=1.5e-3, warmup_epochs=0.2),
                    pretrain_corpus=38_400,
                    # from scratch: 30x ME-GraphAU's rate (no pretrained backbone), half its batch, converged at 12
                    teacher_train=TeacherTrainConfig(epochs=12, batch_size=32, lr=3e-3, warmup_epochs=0.5),
                    # the mapping from scratch at 30x the teacher's paper rate, block 3 of 6, ME-GraphAU's 20 epochs
                    distill=DistillConfig(depth=3, epochs=20, lr=3e-3), distill_folds=(1,),
                    test_stride=4, probe_stride=2),  # neighbouring frames are near-duplicates
    # GPU scale: 224 px faces, BP4D-sized subject pool.
    "paper": Profile("paper", DataConfig(img_size=224, n_subjects=41, n_tasks=8, frames_per_task=100), mae="paper",
                     teacher="paper",
                     pretrain=PretrainConfig(epochs=100, batch_size=256, warmup_epochs=10), probe_epochs=90,
                     # bf16 autocast (ViT-B and ResNet-50 train stably in bf16, no loss scaling needed);
                     # 8 processes decode the JPEG/PNG frames of BP4D/DISFA while the GPU trains
                     engine=EngineConfig(precision="bf16", workers=8)),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile ``name``, else ``$OCCFAU_PROFILE``, else ``demo``; ``overrides`` replace top-level fields."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (from {PROFILE_ENV}?); choose one of {sorted(PROFILES)}") from None
    return replace(profile, **overrides) if overrides else profile


def setup(seed: int = 0, profile: str | None = None) -> Profile:
    """The first call of every notebook: seeds, deterministic kernels, the figure style, and a line
    saying what runs where."""
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


#: Command-line presets: the notebook profiles plus one paper preset per dataset, differing where
#: ME-GraphAU does (docs/method-notes.md): the edge loss's lambda 0.05 / 0.01, the graph's K 4 / 3.
PRESETS: dict[str, Profile] = {
    "smoke": PROFILES["smoke"],
    "demo": PROFILES["demo"],
    "paper-bp4d": replace(PROFILES["paper"], name="paper-bp4d"),
    "paper-disfa": replace(PROFILES["paper"], name="paper-disfa", teacher="paper-disfa",
                           teacher_train=replace(PROFILES["paper"].teacher_train, edge_weight=0.01),
                           distill=replace(PROFILES["paper"].distill, edge_ce_weight=0.01)),
}
