"""The VAE: the notebook's layer sequence, exact output shapes for 1/2/3 s, and the two loss terms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from barkwatch.model.vae import PRESETS, VAE, count_parameters, loss_terms


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("frames", [44, 87, 130])
def test_decoder_returns_exactly_the_input_shape(preset, frames):
    vae = VAE(PRESETS[preset], 128, frames).eval()
    x = torch.rand(2, 1, 128, frames)
    with torch.no_grad():
        x_hat, mu, logvar = vae(x)
    assert x_hat.shape == x.shape
    assert mu.shape == logvar.shape == (2, PRESETS[preset].latent)


def test_seed_preset_is_the_notebook_network():
    vae = VAE(PRESETS["seed"], 128, 130)
    convs = [m for m in vae.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 32]
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    # ReLU before BatchNorm in every block.
    kinds = [type(m) for m in vae.encoder][:15]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d] * 5
    # mu and logvar are the two halves of one Linear + BatchNorm1d of width 2 x 128.
    linear, bn = list(vae.encoder)[-2:]
    assert isinstance(linear, nn.Linear) and linear.out_features == 256 and isinstance(bn, nn.BatchNorm1d)
    deconvs = [m for m in vae.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [64, 128, 256, 512, 1]
    assert [d.stride for d in deconvs] == [(1, 1)] + [(2, 2)] * 4
    assert isinstance(list(vae.decoder)[-2], nn.ReLU) and isinstance(list(vae.decoder)[-1], nn.BatchNorm2d)
    # seed-notes.md: about 4 M parameters (4.04 M measured for the notebook's network).
    assert 4.0e6 < count_parameters(vae) < 4.1e6


def test_loss_terms():
    x = torch.zeros(2, 1, 4, 5)
    x_hat = torch.stack([torch.zeros(1, 4, 5), torch.full((1, 4, 5), 0.5)])
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    rl, kl = loss_terms(x, x_hat, mu, logvar)
    assert torch.allclose(rl, torch.tensor([0.0, 0.25]))
    # 0.5 * sum(exp(lv) - lv - 1 + mu^2): second row = 0.5 * ((0 + 1) + (e - 1 - 1 + 4))
    assert torch.allclose(kl, torch.tensor([0.0, 0.5 * (1.0 + math.e + 2.0)]))


def test_training_mode_samples_and_eval_mode_decodes_the_mean():
    torch.manual_seed(0)
    vae = VAE(PRESETS["small"], 128, 44)
    x = torch.rand(4, 1, 128, 44)
    vae.train()
    vae(x)  # BatchNorm statistics
    vae.eval()
    with torch.no_grad():
        a, mu, _ = vae(x)
        b, _, _ = vae(x)
        assert torch.equal(a, b)
        assert torch.allclose(a, vae.decode(mu))
