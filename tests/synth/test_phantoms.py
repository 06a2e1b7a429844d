from __future__ import annotations

import numpy as np

from tftt.synth import phantoms


def test_generators_are_seeded_by_their_key() -> None:
    a = phantoms.ct_slice(32, 0.5, phantoms.rng_for(1, 2, 3))
    b = phantoms.ct_slice(32, 0.5, phantoms.rng_for(1, 2, 3))
    c = phantoms.ct_slice(32, 0.5, phantoms.rng_for(1, 2, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_shapes_types_and_ranges() -> None:
    rng = phantoms.rng_for(0)
    ct = phantoms.ct_slice(64, 0.0, rng)
    assert ct.dtype == np.uint16 and ct.shape == (64, 64) and ct.max() < 4096
    assert phantoms.mr_slice(48, 1.0, rng).max() < 4096
    xr = phantoms.radiograph(40, 32, rng, 12)
    assert xr.shape == (40, 32) and xr.max() < 4096
    us = phantoms.us_frames(3, 30, 40, rng)
    assert us.shape == (3, 30, 40, 3) and us.dtype == np.uint8
    assert not np.array_equal(us[0], us[1])  # it moves
    xa = phantoms.xa_frames(4, 32, 32, rng)
    assert xa.shape == (4, 32, 32) and (xa[-1] < 100).sum() >= (xa[0] < 100).sum()
    assert phantoms.screen(60, 80, rng).shape == (60, 80, 3)
