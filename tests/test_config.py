"""Profiles, AU metadata and config hashes (the artefact cache itself: test_cache.py)."""
import dataclasses

import pytest

from occfau_lib import aus, cache, config


def test_profiles_and_env_selection(monkeypatch):
    assert set(config.PROFILES) == {"smoke", "demo", "paper"}
    monkeypatch.delenv("OCCFAU_PROFILE", raising=False)
    assert config.get_profile().name == "demo"
    monkeypatch.setenv("OCCFAU_PROFILE", "smoke")
    assert config.get_profile().name == "smoke"
    assert config.get_profile("paper").data.img_size == 224
    assert config.get_profile("smoke", batch_size=3).batch_size == 3
    smoke, demo = config.PROFILES["smoke"].data, config.PROFILES["demo"].data
    assert smoke.n_images < demo.n_images < config.PROFILES["paper"].data.n_images
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        config.get_profile("huge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.PROFILES["demo"].batch_size = 1


def test_test_stride_scores_every_frame_on_paper_and_is_validated():
    # the papers' tables score every test frame; the classroom profile a quarter of them (config.py: measured)
    assert config.PROFILES["paper"].test_stride == 1 and config.PROFILES["demo"].test_stride == 4
    assert config.get_profile("demo", test_stride=1).test_stride == 1
    with pytest.raises(ValueError, match="profile 'demo': test_stride must be >= 1"):
        config.get_profile("demo", test_stride=0)


def test_probe_stride_probes_every_frame_on_paper_and_is_validated():
    # notebook 02 probes every 2nd frame of each video on the classroom profile (config.py: measured)
    assert config.PROFILES["paper"].probe_stride == 1 and config.PROFILES["demo"].probe_stride == 2
    with pytest.raises(ValueError, match="profile 'demo': probe_stride must be >= 1"):
        config.get_profile("demo", probe_stride=0)


def test_au_metadata():
    assert aus.ALL_AUS == (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)
    assert len(aus.BP4D_AUS) == 12 and len(aus.DISFA_AUS) == 8
    assert set(aus.BP4D_AUS) <= set(aus.ALL_AUS) and set(aus.DISFA_AUS) <= set(aus.ALL_AUS)
    assert aus.AUS[12].name == "Lip corner puller" and aus.AUS[12].muscle.startswith("zygomaticus")
    assert all(au.region in aus.REGIONS for au in aus.AUS.values())
    assert aus.au_set("BP4D") == aus.BP4D_AUS and aus.au_set([12, 1]) == (12, 1)
    assert aus.parse_au_label("AU012") == 12 and aus.au_labels((1, 2)) == ["AU1", "AU2"]
    with pytest.raises(ValueError, match="unknown AU number"):
        aus.au_set([3])
    with pytest.raises(ValueError, match="unknown AU set"):
        aus.au_set("ck+")
    with pytest.raises(ValueError, match="not an AU label"):
        aus.parse_au_label("AUx")


def test_config_hash_is_stable_and_sensitive():
    a = config.DataConfig()
    assert cache.config_hash(a) == cache.config_hash(config.DataConfig())
    assert cache.config_hash(a) != cache.config_hash(config.DataConfig(seed=1))
    assert cache.config_hash({"b": 1, "a": 2}) == cache.config_hash({"a": 2, "b": 1})

