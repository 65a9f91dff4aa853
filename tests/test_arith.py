"""Conv arithmetic against the notes' worked examples and first principles."""

import math

import pytest

from compact_jax import arith


def test_notes_examples():
    # A 5x5 filter on a 32x32x3 image: 75 weights + 1 bias, against 3,072 + 1 for one FC neuron.
    assert arith.conv_params((5, 5), in_channels=3, out_channels=1) == 76
    assert arith.conv_params((5, 5), in_channels=3, out_channels=1, use_bias=False) == 75
    assert arith.dense_params((32, 32, 3), out_units=1) == 3073
    assert arith.dense_params((32, 32, 3), out_units=1, use_bias=False) == 3072
    # "nearly 200,000" FC parameters for 3x256x256; still 76 for the conv.
    assert arith.dense_params((256, 256, 3), out_units=1) == 196_609
    # Stride 2, no padding: 14x14 feature maps.
    assert arith.output_shape((32, 32), (5, 5), strides=2, padding="VALID") == (14, 14)
    assert arith.output_shape((32, 32), (5, 5), strides=1, padding="VALID") == (28, 28)
    # Padding 1 for 3x3 and 2 for 5x5 keep the size.
    assert arith.output_shape((32, 32), (3, 3), padding=1) == (32, 32)
    assert arith.output_shape((32, 32), (5, 5), padding=2) == (32, 32)
    # Six 3x5x5 filters: 18 kernels of 25 weights, plus 6 biases.
    assert arith.conv_params((5, 5), in_channels=3, out_channels=6) == 6 * 75 + 6


@pytest.mark.parametrize("n", [1, 2, 7, 8, 31, 32])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("d", [1, 2])
def test_same_and_valid_follow_definitions(n, k, s, d):
    assert arith.output_size(n, k, stride=s, padding="SAME", dilation=d) == math.ceil(n / s)
    k_eff = (k - 1) * d + 1
    expected_valid = max(0, math.ceil((n - k_eff + 1) / s))
    assert arith.output_size(n, k, stride=s, padding="VALID", dilation=d) == expected_valid


def test_explicit_and_input_dilation():
    # (n - 1) * u + 1 dilated input, then the plain formula.
    assert arith.output_size(4, 3, padding=(1, 1), input_dilation=2) == 7
    assert arith.output_size(10, 3, padding=(2, 0), stride=2) == 5
    assert arith.output_shape((10, 9, 8), (3, 3, 3), padding=[(1, 1), 0, (2, 1)]) == (10, 7, 9)


def test_same_padding_puts_extra_on_high_side():
    assert arith.canonical_padding("SAME", input_spatial=(8,), kernel_size=(4,)) == ((1, 2),)
    assert arith.canonical_padding("same", input_spatial=(9,), kernel_size=(3,), strides=2) == ((1, 1),)


def test_macs():
    # ResNet-18 CIFAR first block conv: 32x32 output, 3x3, 64 -> 64.
    assert arith.conv_macs((32, 32), (3, 3), in_channels=64, out_channels=64) == 32 * 32 * 9 * 64 * 64
    # Depthwise 7x7 on 56x56x96.
    assert arith.conv_macs((56, 56), (7, 7), in_channels=96, out_channels=96, feature_group_count=96) == 56 * 56 * 49 * 96


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: arith.output_size(32, 3, padding="FULL"), ValueError, "padding must be one of"),
        (lambda: arith.output_size(32, 0), ValueError, "kernel_size"),
        (lambda: arith.output_size(32, 3, stride=0), ValueError, "stride"),
        (lambda: arith.output_size(32.0, 3), TypeError, "input size"),
        (lambda: arith.output_shape((32, 32), (3, 3), padding=[(1, 1)]), ValueError, "one entry per spatial"),
        (lambda: arith.output_shape((32, 32), (3, 3), padding=[(1, 1, 1), 0]), TypeError, "pairs"),
        (lambda: arith.conv_params((3, 3), in_channels=6, out_channels=4, feature_group_count=4), ValueError, "divisible"),
        (lambda: arith.conv_params(3, in_channels=3, out_channels=4), TypeError, "sequence"),
        (lambda: arith.dense_params((32, 32, 3), out_units=0), ValueError, "out_units"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
