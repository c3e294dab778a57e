"""Run settings for the command line: a preset or a YAML file, then ``key=value`` overrides,
every key and value checked against the config dataclasses before any work starts.

Used by :mod:`occfau_lib.cli`; the presets themselves are profiles (:data:`config.PRESETS`).
"""
from __future__ import annotations

import os
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass, replace

import yaml

from .config import MAE_CONFIGS, PRESETS, TEACHER_CONFIGS, Profile


def run_config(config: str, overrides=()) -> Profile:
    """The profile of a command-line run: ``config`` is a preset name (:data:`PRESETS`) or a YAML
    file (``base: <preset>`` plus any fields, nested as in :class:`Profile`), then ``overrides``
    ``"key=value"`` with dotted keys (``distill.epochs=2``, ``teacher_train.lr=3e-4``,
    ``folds=[1,2]``, ``distill.depth=null``). Every key and value is checked against the
    dataclasses: an unknown key, a wrong type or a malformed override is a ``ValueError`` that
    names it."""
    fields: dict = {}
    if config in PRESETS:
        base = PRESETS[config]
    elif config.endswith((".yaml", ".yml")) and os.path.isfile(config):
        with open(config) as f:
            fields = yaml.safe_load(f) or {}
        if not isinstance(fields, dict):
            raise ValueError(f"{config}: expected a mapping of profile fields at the top level")
        fields = dict(fields)
        name = fields.pop("base", "demo")
        if name not in PRESETS:
            raise ValueError(f"{config}: base {name!r} is not a preset; choose one of {sorted(PRESETS)}")
        base = PRESETS[name]
    else:
        raise ValueError(f"--config {config!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a YAML file")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        node = fields
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a group of settings")
        node[leaf] = yaml.safe_load(value)
    profile = _apply(base, fields, "")
    for key, table in (("mae", MAE_CONFIGS), ("teacher", TEACHER_CONFIGS)):
        if getattr(profile, key) not in table:
            raise ValueError(f"setting {key!r} = {getattr(profile, key)!r} is not one of {sorted(table)}")
    for key in ("batch_size", "probe_epochs"):
        if getattr(profile, key) < 1:
            raise ValueError(f"setting {key!r} must be >= 1; got {getattr(profile, key)}")
    if not set(profile.folds) | set(profile.distill_folds) <= {1, 2, 3}:
        raise ValueError(f"folds must be among 1, 2, 3; got {profile.folds} / {profile.distill_folds}")
    return profile


def _apply(obj, changes: dict, where: str):
    """``obj`` (a frozen dataclass) with ``changes`` applied recursively, every value type-checked."""
    known = {f.name: f for f in dataclass_fields(obj)}
    updates = {}
    for key, value in changes.items():
        path = f"{where}{key}"
        if key not in known:
            raise ValueError(f"unknown setting {path!r}; {type(obj).__name__} has {sorted(known)}")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"setting {path!r} is a group; give its fields ({path}.<field>=...)")
            updates[key] = _apply(current, value, f"{path}.")
        else:
            updates[key] = _coerce(value, current, known[key].type, path)
    try:
        return replace(obj, **updates)
    except ValueError as err:  # a dataclass's own check (__post_init__: schedules, EngineConfig)
        raise ValueError(f"setting {where.rstrip('.') or 'profile'!r}: {err}") from None


def _coerce(value, current, annotation: str, path: str):
    """``value`` (from YAML) as the type of the field it replaces, or a ValueError naming ``path``."""
    optional = "None" in str(annotation)
    if value is None:
        if optional:
            return None
        raise ValueError(f"setting {path!r} cannot be null")
    kind = type(current) if current is not None else int  # the only optional field today is an int
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is tuple:
            items = value if isinstance(value, (list, tuple)) else [value]
            inner = type(current[0]) if current else int
            return tuple(inner(v) for v in items)
        if kind in (int, float) and isinstance(value, bool):
            raise TypeError
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"setting {path!r} must be {kind.__name__}; got {value!r}") from None
