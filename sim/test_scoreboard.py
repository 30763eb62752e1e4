"""The scoreboard's comparison on golden-model records (no simulator needed).

Every single-bit flip anywhere in a record must be reported at exactly its coordinates, and
nothing must be reported for identical records: the whole-network benches rely on both.
"""

import numpy as np
import pytest

from model.config import PRESETS
from quant import golden
from quant.artifact import random_artifact
from sim.scoreboard import Mismatch, compare_layers, first_mismatch


def _one_image_record(seed):
    cfg = PRESETS["digits-tiny"].replace(blocks=2)
    art = random_artifact(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    img = rng.integers(0, cfg.pixel_max + 1, (1, *cfg.image_shape))
    rec = golden.forward(art, img)
    layers = golden.spike_layers(cfg)
    one = {k: v[0] for k, v in rec.items()}
    return cfg, layers, one


def test_identical_records_match(seed):
    _, layers, rec = _one_image_record(seed)
    assert first_mismatch(rec, {k: v.copy() for k, v in rec.items()}, layers, seed=seed) is None


def test_every_single_flip_is_found_where_it_is(seed):
    cfg, layers, rec = _one_image_record(seed)
    rng = np.random.default_rng(seed)
    for name in layers:
        for _ in range(3):
            hw = {k: v.copy() for k, v in rec.items()}
            idx = tuple(int(rng.integers(0, s)) for s in hw[name].shape)
            hw[name][idx] ^= 1
            m = compare_layers(rec, hw, layers, seed=seed, image=7)
            assert m is not None, f"flip in {name}{idx} not found (seed {seed})"
            if name.endswith(".kv"):
                assert (m.layer, m.t, m.token, m.channel) == (name, idx[0], None, idx[1])
            else:
                assert (m.layer, m.t, m.token, m.channel) == (name, *idx)
            assert m.expected == rec[name][idx] and m.got == hw[name][idx]


def test_earliest_layer_wins_and_message_format():
    _, layers, rec = _one_image_record(0)
    hw = {k: v.copy() for k, v in rec.items()}
    hw["head"][0, 0, 0] ^= 1
    hw["b0.q"][3, 2, 1] ^= 1
    m = compare_layers(rec, hw, layers, seed=42, image=5)
    assert str(m) == f"image 5: b0.q/3/2/1: expected {rec['b0.q'][3, 2, 1]} got {hw['b0.q'][3, 2, 1]} (seed 42)"


def test_missing_layer_shape_and_logits():
    _, layers, rec = _one_image_record(1)
    hw = {k: v for k, v in rec.items() if k != "b1.fc1"}
    m = compare_layers(rec, hw, layers)
    assert m.layer == "b1.fc1" and "missing" in str(m.got)
    hw = dict(rec)
    hw["enc"] = rec["enc"][:-1]
    assert "shape" in str(compare_layers(rec, hw, layers))
    hw = {k: v.copy() for k, v in rec.items()}
    hw["logits"][4] += 1
    m = first_mismatch(rec, hw, layers)
    assert (m.layer, m.channel, m.got) == ("logits", 4, rec["logits"][4] + 1)
    hw = {k: v.copy() for k, v in rec.items()}
    hw["pred"] = np.asarray(rec["pred"]) + 1
    assert first_mismatch(rec, hw, layers).layer == "pred"


def test_mismatch_without_coordinates_prints_dashes():
    assert str(Mismatch("enc", None, None, None, 1, 0)) == "enc/-/-/-: expected 1 got 0"
