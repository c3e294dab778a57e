"""The command line's settings: a preset (:data:`config.PRESETS`) or a YAML file, then
``key=value`` overrides, every key and value checked against the config dataclasses and the
stages' settings against each other, before any work starts.

PyYAML parses; the checks are a few dozen lines here because they are stricter than a config
library's (a bool is no int, 2.9 no int, a duplicate YAML key an error) and name the setting.
"""
from __future__ import annotations

import os
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass, replace
from pathlib import Path

import yaml

from .config import MAE_CONFIGS, PRESETS, PROFILE_ENV, TEACHER_CONFIGS, Profile
from .tables import read_text

DEFAULT_CONFIG = "demo"


def config_name(given: str | None) -> str:
    """``--config`` if given, else ``$OCCFAU_PROFILE`` (a preset name), else :data:`DEFAULT_CONFIG`."""
    if given:
        return given
    name = os.environ.get(PROFILE_ENV) or DEFAULT_CONFIG
    if name not in PRESETS:
        hint = " (the paper presets are paper-bp4d and paper-disfa)" if name == "paper" else ""
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a command-line preset{hint}; choose one of "
                         f"{', '.join(sorted(PRESETS))}, or pass --config")
    return name


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not the last one kept)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *defaults" may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (first on line {first})",
                                                        key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, where: str):
    """``text`` as YAML; bad YAML is a one-line ValueError starting with ``where`` and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{where}{line}: not valid YAML ({problem})") from None


def run_config(config: str, overrides=()) -> Profile:
    """The profile of a run: ``config`` is a preset or a YAML file (``base: <preset>`` plus fields
    nested as in :class:`Profile`), then ``"key=value"`` overrides with dotted keys
    (``distill.epochs=2``, ``folds=[1,2]``, ``distill.depth=null``). A bad key or value is a
    ValueError naming it."""
    fields: dict = {}
    if config in PRESETS:
        base = PRESETS[config]
    elif config.endswith((".yaml", ".yml")) and os.path.isfile(config):
        fields = load_yaml(read_text(Path(config)), config) or {}
        if not isinstance(fields, dict):
            raise ValueError(f"{config}: expected a mapping of profile fields at the top level")
        fields = dict(fields)
        fields.pop("dataset", None)  # what a run's config.yaml records it read: --dataset chooses the data
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
        node[leaf] = load_yaml(value, f"override {item!r}")
    profile = _apply(base, fields, "")
    for key, table in (("mae", MAE_CONFIGS), ("teacher", TEACHER_CONFIGS)):
        if getattr(profile, key) not in table:
            raise ValueError(f"setting {key!r} = {getattr(profile, key)!r} is not one of {sorted(table)}")
    for key in ("batch_size", "probe_epochs"):
        if getattr(profile, key) < 1:
            raise ValueError(f"setting {key!r} must be >= 1; got {getattr(profile, key)}")
    for key in ("folds", "distill_folds"):
        folds = getattr(profile, key)
        if not set(folds) <= {1, 2, 3} or len(set(folds)) != len(folds):
            raise ValueError(f"setting {key!r}: folds must be among 1, 2, 3, each once; got {list(folds)}")
    check_stages(profile)
    return profile


def check_stages(profile: Profile) -> None:
    """Settings that meet in a later stage: the faces' size is the MAE's input size, and the
    student reads at most as many MAE blocks as there are."""
    arch = MAE_CONFIGS[profile.mae]
    if profile.data.img_size != arch.img_size:
        raise ValueError(f"setting 'data.img_size' = {profile.data.img_size}: the {profile.mae!r} MAE reads "
                         f"{arch.img_size}-px faces; use data.img_size={arch.img_size}")
    depth = profile.distill.depth
    if depth is not None and depth > arch.num_layers:
        raise ValueError(f"setting 'distill.depth' = {depth}: the {profile.mae!r} MAE has {arch.num_layers} "
                         f"blocks; use 1..{arch.num_layers}, or null for all")


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
    optional = "None" in str(annotation)
    if value is None:
        if optional:
            return None
        raise ValueError(f"setting {path!r} cannot be null")
    if isinstance(current, tuple):  # a list setting: at least one value, each as strict as a single one
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        inner = type(current[0]) if current else int
        try:
            if not items:
                raise ValueError
            return tuple(_scalar(v, inner) for v in items)
        except (TypeError, ValueError):
            raise ValueError(f"setting {path!r} must be a non-empty list of {inner.__name__}; got {value!r}") from None
    kind = type(current) if current is not None else int  # the only optional field today is an int
    try:
        return _scalar(value, kind)
    except (TypeError, ValueError):
        raise ValueError(f"setting {path!r} must be {kind.__name__}; got {value!r}") from None


def _scalar(value, kind: type):
    """``value`` as ``kind`` without a lossy conversion (a bool is no number, 2.9 no int)."""
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind in (int, float) and isinstance(value, bool):
        raise TypeError
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise TypeError
    return kind(value)
