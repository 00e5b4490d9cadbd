"""Tests of espnet_msrs/layers/resnet.py's input-length check (the ResNet
blocks themselves are tested through the audio and video front ends)."""

import pytest
import torch

from espnet_msrs.layers.resnet import check_input_lengths


def test_valid_lengths_pass():
    check_input_lengths("F", torch.tensor([0, 5, 3]), 3, 5, "frames")
    check_input_lengths("F", torch.zeros(0, dtype=torch.long), 0, 5, "frames")


def test_wrong_shape_names_the_owner_and_the_expected_shape():
    with pytest.raises(ValueError, match=r"^F: input_lengths of shape \(2, 1\); "
                       r"expected \(2,\)$"):
        check_input_lengths("F", torch.ones(2, 1, dtype=torch.long), 2, 5, "frames")


@pytest.mark.parametrize("lengths", [[6, 1], [-1, 1]])
def test_length_out_of_range_names_the_range_and_unit(lengths):
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\] \(the number of "
                       r"samples of the input\)"):
        check_input_lengths("F", torch.tensor(lengths), 2, 5, "samples")
