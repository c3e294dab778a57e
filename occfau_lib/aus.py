"""Facial Action Units (FACS) used in this repository.

Taught in notebook 00. Every dataset, model and metric refers to AUs by their FACS number and
keeps label columns in the order of a tuple of such numbers (``BP4D_AUS``, ``DISFA_AUS`` or
``ALL_AUS``), so per-AU results from different models line up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ActionUnit:
    """One FACS action unit: number, FACS name, the muscle behind it and where it shows."""

    number: int
    name: str
    muscle: str
    region: str  # one of REGIONS

    @property
    def label(self) -> str:
        return f"AU{self.number}"


#: Coarse face regions; every AU lives in exactly one (used by occluders and region maps).
REGIONS = ("brows", "eyes", "nose", "cheeks", "mouth", "chin")

_TABLE = [
    (1, "Inner brow raiser", "frontalis, pars medialis", "brows"),
    (2, "Outer brow raiser", "frontalis, pars lateralis", "brows"),
    (4, "Brow lowerer", "corrugator supercilii, depressor supercilii", "brows"),
    (6, "Cheek raiser", "orbicularis oculi, pars orbitalis", "cheeks"),
    (7, "Lid tightener", "orbicularis oculi, pars palpebralis", "eyes"),
    (9, "Nose wrinkler", "levator labii superioris alaeque nasi", "nose"),
    (10, "Upper lip raiser", "levator labii superioris", "mouth"),
    (12, "Lip corner puller", "zygomaticus major", "mouth"),
    (14, "Dimpler", "buccinator", "mouth"),
    (15, "Lip corner depressor", "depressor anguli oris", "mouth"),
    (17, "Chin raiser", "mentalis", "chin"),
    (23, "Lip tightener", "orbicularis oris", "mouth"),
    (24, "Lip pressor", "orbicularis oris", "mouth"),
    (25, "Lips part", "depressor labii inferioris (or relaxed mentalis / orbicularis oris)", "mouth"),
    (26, "Jaw drop", "masseter relaxed; temporalis and internal pterygoid relaxed", "chin"),
]

#: Every AU SynthFACS renders, by number.
AUS: dict[int, ActionUnit] = {n: ActionUnit(n, name, muscle, region) for n, name, muscle, region in _TABLE}
ALL_AUS: tuple[int, ...] = tuple(AUS)
#: The 12 AUs evaluated on BP4D.
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
#: The 8 AUs evaluated on DISFA.
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
#: Named subsets, so configs can say ``aus: bp4d``.
AU_SETS: dict[str, tuple[int, ...]] = {"all": ALL_AUS, "bp4d": BP4D_AUS, "disfa": DISFA_AUS}


def au_set(spec: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Resolve ``"bp4d"``/``"disfa"``/``"all"`` or a list of AU numbers to a validated tuple."""
    if isinstance(spec, str):
        try:
            return AU_SETS[spec.lower()]
        except KeyError:
            raise ValueError(f"unknown AU set {spec!r}; choose one of {sorted(AU_SETS)}") from None
    aus = tuple(int(a) for a in spec)
    unknown = [a for a in aus if a not in AUS]
    if unknown:
        raise ValueError(f"unknown AU number(s) {unknown}; known AUs are {list(ALL_AUS)}")
    if len(set(aus)) != len(aus):
        raise ValueError(f"duplicate AU numbers in {list(aus)}")
    return aus


def parse_au_label(text: str) -> int:
    """``"AU12"``, ``"au12"``, ``"AU_12"``, ``"AU 12"``, ``"AU-12"``, ``"12"`` or ``"AU012"`` -> 12."""
    match = re.fullmatch(r"(?i)(?:au[ _-]?)?(\d+)", str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not an AU label (expected e.g. 'AU12' or '12')")
    return int(match.group(1))


def au_labels(aus: tuple[int, ...]) -> list[str]:
    """Column names for a tuple of AU numbers: ``[1, 2] -> ['AU1', 'AU2']``."""
    return [f"AU{a}" for a in aus]
