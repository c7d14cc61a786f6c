"""lpaccel.bcq.quantize_bcq: greedy start + alternating least squares, float16 scales."""

import numpy as np
import pytest

from lpaccel.bcq import bcq_weights, bits_per_weight, quantize_bcq


def _rel(qw, w):
    return np.linalg.norm(qw.dequantize_f64() - w) / np.linalg.norm(w)


def _gaussian(rows=32, cols=256, seed=0, mean=0.0):
    return np.random.default_rng(seed).normal(mean, 0.05, (rows, cols)).astype(np.float32)


def _bcq_matrix(planes, offset, rows=16, cols=256, group=64, seed=1, ratio=2.0):
    """A matrix that is exactly BCQ with float16 scales (plane p's scale = s ratio^p / 2)."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.01, 0.1, (1, rows, cols // group))
    alpha = (s * ratio ** (np.arange(planes)[:, None, None] - 1)).astype(np.float16)
    bits = rng.integers(0, 2, (planes, rows, cols)).astype(np.uint8)
    off = rng.normal(0, 0.05, (rows, cols // group)).astype(np.float16) if offset else None
    w = bcq_weights(bits, alpha.view(np.uint16), group,
                    None if off is None else off.view(np.uint16)).dequantize_f64()
    return w, bits, alpha


def test_fields_and_float16_scales():
    w = _gaussian()
    qw = quantize_bcq(w, 3, group=64, offset=True)
    assert qw.planes == 3 and qw.offset and qw.group == 64
    assert qw.plane_bits.shape == (3, 32, 256) and qw.plane_bits.dtype == np.uint8
    assert set(np.unique(qw.plane_bits)) <= {0, 1}
    assert qw.alpha_bits.shape == (3, 32, 4) and qw.alpha_bits.dtype == np.uint16
    assert qw.offset_bits.shape == (32, 4)
    alpha = qw.alpha_bits.view(np.float16).astype(np.float64)
    # Positive scales, plane 0 the largest in every group.
    assert (alpha >= 0).all() and (np.diff(alpha, axis=0) <= 0).all()
    assert quantize_bcq(w, 2).offset_bits is None


def test_error_decreases_with_planes():
    w = _gaussian()
    errors = [_rel(quantize_bcq(w, q), w) for q in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.12


@pytest.mark.parametrize("planes", [2, 3, 4])
@pytest.mark.parametrize("offset", [False, True])
def test_alternating_beats_greedy(planes, offset):
    w = _gaussian(seed=planes)
    als = _rel(quantize_bcq(w, planes, offset=offset), w)
    start = _rel(quantize_bcq(w, planes, offset=offset, iterations=0), w)
    assert als <= start
    assert als < 0.97 * start


def test_final_signs_are_best_for_the_float16_scales():
    # No single weight can move to another sign pattern and get closer.
    w = _gaussian(rows=8, cols=128)
    qw = quantize_bcq(w, 3, group=32, offset=True)
    alpha = qw.alpha_bits.view(np.float16).astype(np.float64)          # [q, R, G]
    off = qw.offset_bits.view(np.float16).astype(np.float64)
    k = np.arange(8)
    signs = 2.0 * ((k[:, None] >> np.arange(3)) & 1) - 1                # [8, q]
    levels = np.einsum("kp,prg->rgk", signs, alpha) + off[..., None]  # [R, G, 8]
    best = np.abs(w.reshape(8, 4, 32, 1) - levels[:, :, None, :]).min(-1).reshape(8, 128)
    assert np.allclose(np.abs(qw.dequantize_f64() - w), best, rtol=0, atol=1e-12)


@pytest.mark.parametrize("planes", [1, 2, 3, 4])
@pytest.mark.parametrize("offset", [False, True])
def test_exact_bcq_matrix_is_recovered(planes, offset):
    w, bits, alpha = _bcq_matrix(planes, offset)
    qw = quantize_bcq(w, planes, group=64, offset=offset)
    # Zero error up to float16 precision of the offset (the scales come out exact).
    assert np.abs(qw.dequantize_f64() - w).max() <= 2.0 ** -11 * np.abs(w).max()
    if not offset:
        assert np.array_equal(qw.plane_bits, bits[::-1])   # planes sorted by scale
        assert np.array_equal(qw.alpha_bits, alpha[::-1].view(np.uint16))


@pytest.mark.parametrize("planes", [1, 2])
def test_exact_bcq_matrix_random_scales(planes):
    w, bits, _ = _bcq_matrix(planes, False, ratio=1.7)
    qw = quantize_bcq(w, planes, group=64)
    assert np.array_equal(qw.dequantize_f64(), w)


def test_offset_helps_on_shifted_data():
    w = _gaussian(mean=0.2)
    for q in (1, 2, 3):
        assert _rel(quantize_bcq(w, q, offset=True), w) < 0.8 * _rel(quantize_bcq(w, q), w)


def test_zero_and_constant_groups():
    w = np.zeros((4, 128), np.float32)
    w[1] = 0.5
    w[2, :64] = -1.0
    qw = quantize_bcq(w, 3, group=64)
    assert np.array_equal(qw.dequantize_f64(), w.astype(np.float64))
    qw = quantize_bcq(w, 2, group=32, offset=True)
    assert np.array_equal(qw.dequantize_f64(), w.astype(np.float64))


def test_fast_enough():
    import time
    w = _gaussian(rows=384, cols=1536)
    t = time.process_time()
    quantize_bcq(w, 4, group=128, offset=True)
    assert time.process_time() - t < 20


def test_bits_per_weight():
    assert bits_per_weight(2, 128) == 2.25
    assert bits_per_weight(3, 128) == 3.375
    assert bits_per_weight(3, 128, offset=True) == 3.5


@pytest.mark.parametrize("kwargs, message", [
    ({"planes": 0}, "planes = 0: BCQ has 1 to 4 binary planes; pass planes=1, 2, 3 or 4"),
    ({"planes": 5}, "planes = 5"),
    ({"planes": 2, "group": 48}, "group = 48: BCQ needs a group size of 32, 64, 128"),
    ({"planes": 2, "iterations": -1}, "iterations = -1"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        quantize_bcq(_gaussian(), **kwargs)


def test_bad_matrices():
    with pytest.raises(ValueError, match="K must be a positive multiple of the group size 128; "
                                         "pad the rows"):
        quantize_bcq(np.zeros((4, 192)), 2)
    w = _gaussian()
    w[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"weights\[3, 7\] = nan: weights must be finite"):
        quantize_bcq(w, 2)
    with pytest.raises(ValueError, match="2-D"):
        quantize_bcq(np.zeros(128), 2)
    with pytest.raises(ValueError, match="beyond float16.*scale the matrix down"):
        quantize_bcq(np.full((1, 128), 1e6), 1)
