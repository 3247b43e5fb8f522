"""Training augmentation: each step does what its docstring says, on real numbers."""

import numpy as np
import pytest
import torch

from barkwatch.training.augment import Augmentation, add_noise_floor, augment, pink_noise, rms, set_level, spec_augment


def db(x):
    return 20 * torch.log10(x)


def test_mixing_puts_the_window_at_the_chosen_snr_over_another_sound():
    from barkwatch.training.augment import mix_into_others

    g = torch.Generator().manual_seed(0)
    waves = torch.randn(200, 1000) * 0.3
    others = torch.sin(torch.arange(1000) * 0.05).repeat(5, 1)
    mixed = mix_into_others(waves, others, p=1.0, snr_db=(10.0, 10.0), generator=g)
    added = mixed - waves
    snr = 20 * torch.log10(waves.square().mean(1).sqrt() / added.square().mean(1).sqrt())
    assert torch.allclose(snr, torch.full((200,), 10.0), atol=1e-3)
    untouched = mix_into_others(waves, others, p=0.0, snr_db=(-5.0, 15.0), generator=g)
    assert torch.equal(untouched, waves)



def test_barks_can_have_their_own_mixing_range():
    from barkwatch.training.augment import mix_into_others

    waves = torch.randn(200, 1000) * 0.3
    others = torch.sin(torch.arange(1000) * 0.05).repeat(5, 1)
    barks = torch.arange(200) % 2 == 0
    mixed = mix_into_others(waves, others, p=1.0, snr_db=(-15.0, -15.0), generator=torch.Generator().manual_seed(0),
                            barks=barks.float(), bark_snr_db=(5.0, 5.0))
    snr = db(rms(waves)) - db(rms(mixed - waves))
    assert torch.allclose(snr[barks], torch.full((100,), 5.0), atol=1e-3)
    assert torch.allclose(snr[~barks], torch.full((100,), -15.0), atol=1e-3)
    aug = Augmentation(mix_p=1.0, bark_snr_db=(0.0, 20.0))
    with pytest.raises(ValueError, match="labels"):
        augment(waves, others, aug, torch.Generator().manual_seed(0))

def test_a_scene_sets_a_bark_by_its_loudest_frame_over_what_is_under_it():
    from barkwatch.training.augment import loudest_frame, place_in_scene

    n, samples = 64, 22050
    barks = torch.zeros(n, samples)
    barks[:, 5120:5632] = torch.randn(n, 512, generator=torch.Generator().manual_seed(1))  # one 23 ms burst
    others = torch.sin(torch.arange(samples) * 0.05).repeat(3, 1)
    labels = torch.ones(n)
    aug = Augmentation(mix_p=1.0, background_dbfs=(-30.0, -30.0), bark_ratio_db=(10.0, 10.0),
                       floor_dbfs=(-90.0, -90.0))
    scene = place_in_scene(barks, others, labels, aug, torch.Generator().manual_seed(0))
    # the background plus floor is -30 dBFS; the burst's frame 10 dB above it (the background adds 0.4 dB)
    assert np.allclose(db(loudest_frame(scene)).numpy(), -20.0 + 10 * np.log10(1.1), atol=0.5)
    quiet = place_in_scene(barks, others, labels, Augmentation(mix_p=1.0, background_dbfs=(-80.0, -80.0),
                           bark_ratio_db=(0.0, 0.0), floor_dbfs=(-90.0, -90.0)), torch.Generator().manual_seed(0))
    assert np.allclose(db(loudest_frame(quiet)).numpy(), -45.0, atol=0.1)  # never under min_bark_dbfs
    # another sound is itself a background: its RMS drawn from background_dbfs, the floor far under it
    sounds = torch.randn(n, samples, generator=torch.Generator().manual_seed(2)) * 0.3
    aug = Augmentation(mix_p=0.0, background_dbfs=(-25.0, -25.0), floor_dbfs=(-90.0, -90.0))
    placed = place_in_scene(sounds, others, torch.zeros(n), aug, torch.Generator().manual_seed(0))
    assert np.allclose(db(rms(placed)).numpy(), -25.0, atol=0.01)
    # nothing clips, whatever the draw
    loud = Augmentation(mix_p=1.0, background_dbfs=(-3.0, 0.0), bark_ratio_db=(20.0, 25.0))
    assert place_in_scene(barks, others * 5, labels, loud, torch.Generator().manual_seed(0)).abs().max() <= 0.99 + 1e-6
    with pytest.raises(ValueError, match="labels"):
        augment(barks, others, Augmentation(scene=True), torch.Generator().manual_seed(0))


def test_set_level_reaches_the_drawn_level_but_never_clips_or_lifts_silence():
    g = torch.Generator().manual_seed(0)
    waves = torch.randn(100, 2000) * 0.01
    out = set_level(waves, (-30.0, -30.0), g)
    assert torch.allclose(db(rms(out)), torch.full((100,), -30.0), atol=1e-3)
    spiky = torch.zeros(1, 2000)
    spiky[0, 10] = 0.5  # quiet in RMS, loud in peak: the gain stops at full scale
    assert set_level(spiky, (0.0, 0.0), g).abs().max() <= 0.99 + 1e-6
    quiet = torch.full((1, 2000), 1e-7)  # -140 dBFS: lifted by at most 40 dB
    assert db(rms(set_level(quiet, (-20.0, -20.0), g)))[0] < -99.0


def test_pink_noise_has_unit_rms_and_falls_3_db_per_octave():
    g = torch.Generator().manual_seed(0)
    noise = pink_noise(64, 22050, g)
    assert torch.allclose(rms(noise), torch.ones(64), atol=1e-4)
    power = torch.fft.rfft(noise, dim=1).abs().square().mean(0)
    low, high = power[500:1000].mean(), power[1000:2000].mean()  # one octave apart
    assert abs(10 * torch.log10(low / high).item() - 3.0) < 0.5


def test_noise_floor_adds_noise_at_the_drawn_level():
    g = torch.Generator().manual_seed(0)
    silent = torch.zeros(10, 22050)
    out = add_noise_floor(silent, (-60.0, -60.0), g)
    assert torch.allclose(db(rms(out)), torch.full((10,), -60.0), atol=1e-3)


def test_spec_augment_zeroes_whole_bands_and_frames_within_the_limits():
    g = torch.Generator().manual_seed(1)
    aug = Augmentation(spec_masks=True, time_masks=1, time_mask_frames=6, freq_masks=1, freq_mask_bands=16)
    x = torch.ones(200, 1, 128, 44)
    out = spec_augment(x, aug, g)
    zero_frames = (out == 0).all(dim=2).sum(dim=(1, 2))  # frames zeroed over every band
    zero_bands = (out == 0).all(dim=3).sum(dim=(1, 2))
    assert zero_frames.max() <= 6 and zero_bands.max() <= 16
    assert zero_frames.float().mean() > 1 and zero_bands.float().mean() > 4  # masks do happen
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_augment_runs_the_steps_in_order_and_keeps_shape():
    g = torch.Generator().manual_seed(0)
    waves = torch.randn(8, 22050) * 0.1
    others = torch.randn(4, 22050) * 0.1
    aug = Augmentation(mix_p=1.0, level_dbfs=(-40.0, -40.0), floor_dbfs=(-90.0, -90.0))
    out = augment(waves, others, aug, g)
    assert out.shape == waves.shape
    # the floor is 50 dB under the set level: the level dominates
    assert np.allclose(db(rms(out)).numpy(), -40.0, atol=0.05)


def test_shift_in_time_moves_a_burst_anywhere_and_keeps_every_sample():
    from barkwatch.training.augment import shift_in_time

    g = torch.Generator().manual_seed(0)
    burst = torch.zeros(400, 1000)
    burst[:, 450:550] = torch.linspace(0.1, 1.0, 100)  # a ramp, so a wrapped copy would show as a reordering
    out = shift_in_time(burst, 1.0, g)
    # Each output is a rotation of its input: the same samples, one offset for the whole window.
    for row in out[:20]:
        k = int(row.argmax()) - 549
        assert torch.equal(torch.roll(burst[0], k), row)
    peaks = out.argmax(dim=1)
    assert peaks.min() < 100 and peaks.max() > 900  # bursts near both edges
    split = out[:, 0].ne(0) & out[:, -1].ne(0)
    assert split.any()
    assert torch.equal(shift_in_time(burst, 0.0, g), burst)


def test_colour_is_a_smooth_bounded_equaliser_that_keeps_the_level():
    from barkwatch.training.augment import colour

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(50, 22050) * 0.1
    out = colour(noise, 1.0, 12.0, g)
    assert torch.allclose(rms(out), rms(noise), rtol=1e-4)
    gain_db = 20 * torch.log10(torch.fft.rfft(out, dim=1).abs() / torch.fft.rfft(noise, dim=1).abs())
    gain_db = gain_db - gain_db.median(dim=1, keepdim=True).values
    assert gain_db.abs().max() < 2 * 12.0 + 3  # within the bounds, give or take the level correction
    assert gain_db[:, 1:].std(dim=1).min() > 0.3  # every window really filtered
    # Smooth: neighbouring frequency bins (1 Hz apart) differ by a tiny fraction of a dB.
    assert (gain_db[:, 101:] - gain_db[:, 100:-1]).abs().max() < 0.5
    assert torch.equal(colour(noise, 0.0, 12.0, g), noise)


def test_change_speed_shifts_a_tone_by_the_drawn_factor_and_keeps_length():
    from barkwatch.training.augment import change_speed

    g = torch.Generator().manual_seed(0)
    t = torch.arange(22050) / 22050
    tone = torch.sin(2 * np.pi * 1000 * t).repeat(50, 1)
    out = change_speed(tone, 0.2, g)
    assert out.shape == tone.shape
    peaks = torch.fft.rfft(out[:, :16000], dim=1).abs().argmax(dim=1).float() * 22050 / 16000
    assert peaks.min() >= 790 and peaks.max() <= 1210 and peaks.std() > 50  # 1 kHz x [0.8, 1.2], spread


def test_reverb_keeps_level_and_adds_a_decaying_tail():
    from barkwatch.training.augment import add_reverb

    g = torch.Generator().manual_seed(0)
    click = torch.zeros(20, 22050)
    click[:, 1000:1100] = 0.5
    out = add_reverb(click, 1.0, (0.4, 0.4), g)
    assert torch.allclose(rms(out), rms(click), rtol=0.5)
    after = out[:, 2000:6000].abs().mean(dim=1)  # silent in the dry window
    assert (after > 1e-4).float().mean() > 0.8  # most windows got a tail (wet share is random)
    assert torch.equal(add_reverb(click, 0.0, (0.4, 0.4), g), click)


def test_low_pass_removes_what_is_above_the_cutoff_only():
    from barkwatch.training.augment import low_pass

    g = torch.Generator().manual_seed(0)
    t = torch.arange(22050) / 22050
    low, high = torch.sin(2 * np.pi * 1000 * t), torch.sin(2 * np.pi * 10800 * t)
    out = low_pass((low + high).repeat(4, 1), 1.0, (4000.0, 10500.0), g)
    spectrum = torch.fft.rfft(out, dim=1).abs()  # 1 Hz bins
    assert torch.allclose(spectrum[:, 1000], torch.full((4,), 11025.0), rtol=1e-3)
    assert (spectrum[:, 10800] < 1.0).all()


def _accelerators() -> list[str]:
    found = ["cuda"] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


@pytest.mark.skipif(not _accelerators(), reason="needs CUDA or MPS (run on a GPU machine)")
@pytest.mark.parametrize("device", _accelerators() or ["none"])
def test_augmentation_on_an_accelerator_matches_the_cpu_draw_for_draw(device):
    # Training augments where the network runs; the random draws come from the same CPU generator, so one seed
    # must give the same windows on any device (up to FFT rounding).
    aug = Augmentation(mix_p=0.8, mix_snr_db=(-15.0, 20.0), level_dbfs=(-50.0, -10.0), floor_dbfs=(-80.0, -50.0),
                       spec_masks=True, shift_p=0.5, speed=0.15, reverb_p=0.5, lowpass_p=0.5, colour_p=0.5)
    waves = torch.randn(16, 22050, generator=torch.Generator().manual_seed(1)) * 0.1
    others = torch.randn(40, 22050, generator=torch.Generator().manual_seed(2)) * 0.05
    on_cpu = augment(waves, others, aug, torch.Generator().manual_seed(3))
    there = augment(waves.to(device), others.to(device), aug, torch.Generator().manual_seed(3))
    assert there.device.type == device
    assert torch.allclose(there.cpu(), on_cpu, atol=1e-4 * float(on_cpu.abs().max()))
    x = torch.rand(16, 1, 64, 44)
    masked = spec_augment(x.to(device), aug, torch.Generator().manual_seed(4))
    assert torch.equal(masked.cpu(), spec_augment(x, aug, torch.Generator().manual_seed(4)))
