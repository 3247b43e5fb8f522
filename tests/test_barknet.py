"""The bark network's PCEN front on numbers: steady sound sinks whatever its level, an onset stands out, the
TorchScript export computes the same, and networks without it keep the weights they always had."""

from __future__ import annotations

import pytest
import torch

from barkwatch.model import modelfile
from barkwatch.model.barknet import BARKNETS, BarkNet, BlockMax, Pcen
from barkwatch.model.features import FeatureParams

P = FeatureParams(normalisation="db")


def window_at(db_by_frame: list[float], bands: int = 8) -> torch.Tensor:
    """``[1, 1, bands, T]`` on the fixed dB scale, every band at the given level in each frame."""
    x = (torch.tensor(db_by_frame) - P.db_low) / (P.db_high - P.db_low)
    return x.expand(1, 1, bands, len(db_by_frame)).clone()


def test_steady_sound_sinks_whatever_its_level_and_an_onset_stands_out():
    pcen = Pcen(bands=8).eval()
    with torch.no_grad():
        quiet, loud = pcen(window_at([-20.0] * 44)), pcen(window_at([25.0] * 44))
        onset = pcen(window_at([-20.0] * 22 + [25.0] * 22))
    assert quiet.max() < 0.6 and loud.max() < 0.6  # 45 dB apart, both near the floor of the scale
    assert (loud.max() - quiet.max()).abs() < 0.2
    # Where a sound 45 dB louder begins, the smoother holds about smooth x its energy: the ratio is about
    # 1 / 0.06, and sqrt(17 + 2) - sqrt(2) = 2.9, ten times the steady level; it fades as the smoother catches up.
    assert 2.5 < onset[..., 22].min() < 3.5 and onset[..., 22].min() > 8 * quiet.max()
    assert onset[..., -1].max() < onset[..., 22].min() / 2


def test_the_smoother_is_the_running_average_it_stands_for():
    pcen = Pcen(bands=3)
    energy = torch.rand(2, 3, 44) ** 4  # power: mostly small, a few large
    level, expected = energy.amin(dim=-1), []
    for t in range(44):  # M[t] = (1 - s) M[t-1] + s E[t], from each band's quietest frame
        level = (1.0 - pcen.smooth) * level + pcen.smooth * energy[:, :, t]
        expected.append(level)
    assert torch.allclose(pcen.smoother(energy), torch.stack(expected, dim=-1), rtol=1e-5, atol=1e-12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, the model format asked for
def test_the_exported_front_computes_the_same_and_plain_networks_keep_their_weights():
    torch.manual_seed(0)
    net = BarkNet(BARKNETS["cnn-pcen"]).eval()
    x = torch.rand(4, 1, 128, 44) * 0.6 + 0.2
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-5)
    assert any(k.startswith("pcen.") for k in net.state_dict())
    assert not any(k.startswith("pcen.") for k in BarkNet(BARKNETS["cnn"]).state_dict())
    both = BarkNet(BARKNETS["cnn"].__class__(front="both")).eval()
    with torch.no_grad():
        assert both(x).shape == (4,)


@pytest.mark.parametrize("shape, pool", [((3, 16, 128, 44), (4, 2)), ((2, 32, 32, 22), (2, 2)),
                                         ((1, 48, 16, 11), (2, 2)), ((5, 64, 8, 6), (2, 1)), ((2, 3, 7, 5), (3, 2))])
def test_block_max_is_torchs_ceil_mode_max_pooling(shape, pool):
    # Odd sizes (11 frames, 7 bands) take the partial windows of ceil_mode; negative values rule out a zero pad.
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    expected = torch.nn.MaxPool2d(pool, ceil_mode=True)(x)
    assert torch.equal(BlockMax(pool)(x), expected)
    with modelfile._quiet_torchscript():  # torch 2.13 warns that TorchScript is deprecated
        scripted = torch.jit.script(BlockMax(pool))
    assert torch.equal(scripted(x), expected)
