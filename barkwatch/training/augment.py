"""Training-time augmentation: make each training window sound like something a microphone in a home hears.

All functions are pure (a torch ``Generator`` in, new tensors out) and work on batches of mono waveforms
``[B, N]`` or of spectrograms ``[B, 1, F, T]``. What each step is for:

- ``mix_into_others``: a bark heard over a TV is still a bark. Every window, bark or not, is mixed into a random
  other sound, so a clean background is never a shortcut to either answer. Barks may get their own, narrower
  range (``bark_snr_db``): a bark mixed 15 dB under a crying baby is inaudible, and labelling that window a bark
  teaches the model that crying babies are barks.
- ``set_level``: the same window at a random loudness, so the model cannot key on how loud the datasets were
  recorded (only matters for the fixed dB scale; min-max scaling removes it anyway).
- ``add_noise_floor``: pink noise under everything, as every room and microphone has. Without it the training
  data's digitally silent stretches teach the model a silence it never hears live.
- ``shift_in_time``: a detector's window slides over a bark, so the bark starts, sits and ends anywhere in it.
  Rolling a window (circularly, so nothing of the bark is lost and the label stays true) teaches the first and
  last windows of a bark too, not only the centred ones training cuts, which is what a short delay needs.
- ``change_speed``: every dog has its own pitch and pace; resampling by up to +-``speed`` stretches both (the
  speed perturbation of Ko et al. 2015), so a few hundred barks stand for many more dogs.
- ``add_reverb``: rooms. A synthetic room response (exponentially decaying noise, RT60 drawn per window) mixed
  in with a random wet share, so close-miked dataset barks also sound like a bark down the hall.
- ``low_pass``: microphones and resamplers cut the top of the spectrum (a 44.1 kHz card resampled to 22,050 Hz
  loses the top half kilohertz, a cheap USB microphone much more); a random cut-off keeps the model from
  relying on the last bands.
- ``colour``: every microphone, wall and distance colours the sound differently; a random smooth equaliser
  (a spectral tilt plus a few broad boosts and cuts on a log-frequency axis) keeps the model from learning
  the datasets' own microphones.
- ``place_in_scene`` (instead of mixing, levelling and the floor): each window as the household benchmark hears
  a home. A background sound at a room's level, a noise floor under it, and a bark set by how far its loudest
  23 ms stands above what is under it (not by window RMS: a short bark in a 1 s window has an RMS 10-15 dB
  under its peak, so an RMS ratio of -15 dB buries it, and a window labelled bark that holds no audible bark
  teaches the model that the background is a bark).
- ``spec_augment``: SpecAugment's time and frequency masks (Park et al. 2019), against learning one narrow cue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augmentation:
    """Settings for ``augment``; a range ``(low, high)`` is drawn uniformly per window, ``None`` turns it off."""

    mix_p: float = 0.75
    mix_snr_db: tuple[float, float] = (-5.0, 15.0)
    bark_snr_db: tuple[float, float] | None = None  # barks' own range (None: mix_snr_db for every window)
    level_dbfs: tuple[float, float] | None = None
    floor_dbfs: tuple[float, float] | None = None
    shift_p: float = 0.0  # chance of a circular time shift per window
    speed: float = 0.0  # resample by a factor in [1 - speed, 1 + speed]
    reverb_p: float = 0.0  # chance of a room response per window
    rt60_s: tuple[float, float] = (0.1, 0.8)
    lowpass_p: float = 0.0  # chance of a low-pass at a random cut-off per window
    lowpass_hz: tuple[float, float] = (4000.0, 10500.0)
    colour_p: float = 0.0  # chance of a random equaliser per window
    colour_db: float = 12.0  # its largest boost or cut
    scene: bool = False  # place_in_scene instead of mix_into_others, set_level and add_noise_floor
    background_dbfs: tuple[float, float] = (-45.0, -15.0)  # scene: the other sounds' RMS level
    bark_ratio_db: tuple[float, float] = (-5.0, 25.0)  # scene: a bark's loudest frame over what is under it
    min_bark_dbfs: float = -45.0  # scene: and its loudest frame never quieter than this
    spec_masks: bool = False
    time_masks: int = 2
    time_mask_frames: int = 6
    freq_masks: int = 2
    freq_mask_bands: int = 16


# Random numbers are always drawn on the CPU from the caller's generator (the same sequence on every device, so
# a seed means the same augmentation anywhere) and then moved to where the audio is: on a GPU only these small
# draws travel, and the work on whole windows (FFTs, gathers) runs beside the network.
def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator,
             device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.empty(n).uniform_(bounds[0], bounds[1], generator=generator).to(device)


def _chance(n: int, p: float, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """``[n, 1]`` booleans, each true with chance ``p``."""
    return (torch.rand(n, generator=generator) < p)[:, None].to(device)


def rms(waves: torch.Tensor) -> torch.Tensor:
    return waves.square().mean(dim=1).sqrt()


def mix_into_others(waves: torch.Tensor, others: torch.Tensor, p: float, snr_db: tuple[float, float],
                    generator: torch.Generator, barks: torch.Tensor | None = None,
                    bark_snr_db: tuple[float, float] | None = None) -> torch.Tensor:
    """With chance ``p``, add a random window of ``others`` under each window, scaled so the window stands
    ``snr_db`` (uniform in the range) above it in RMS; windows where ``barks`` (booleans ``[B]``) is true use
    ``bark_snr_db`` instead when it is given. The label stays the window's own."""
    if bark_snr_db is not None and barks is None:
        raise ValueError("mix_into_others: bark_snr_db needs the windows' labels")
    n = len(waves)
    if n == 0 or len(others) == 0:
        return waves
    chosen = others[torch.randint(len(others), (n,), generator=generator).to(others.device)].to(waves.device)
    where = _uniform(n, (0.0, 1.0), generator, waves.device)  # one draw per window whatever its range
    bounds = torch.tensor(snr_db, device=waves.device).expand(n, 2)  # [n, (low, high)]
    if bark_snr_db is not None:
        bark_bounds = torch.tensor(bark_snr_db, device=waves.device)
        bounds = torch.where(barks.to(waves.device).bool()[:, None], bark_bounds, bounds)
    snr = bounds[:, 0] + where * (bounds[:, 1] - bounds[:, 0])
    gain = rms(waves) / (rms(chosen).clamp(min=1e-8) * 10.0 ** (snr / 20.0))
    mixed = waves + gain[:, None] * chosen
    return torch.where(_chance(n, p, generator, waves.device), mixed, waves)


def set_level(waves: torch.Tensor, dbfs: tuple[float, float], generator: torch.Generator,
              max_gain_db: float = 40.0) -> torch.Tensor:
    """Scale each window to an RMS level drawn from ``dbfs``, never by more than ``max_gain_db`` (a silent
    window stays silent) and never past full scale."""
    target = 10.0 ** (_uniform(len(waves), dbfs, generator, waves.device) / 20.0)
    gain = (target / rms(waves).clamp(min=1e-8)).clamp(max=10.0 ** (max_gain_db / 20.0))
    peak = waves.abs().amax(dim=1).clamp(min=1e-8)
    gain = torch.minimum(gain, 0.99 / peak)
    return waves * gain[:, None]


def pink_noise(n: int, samples: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` windows of pink (1/f power) noise with unit RMS."""
    white = torch.randn(n, samples, generator=generator).to(device)
    spectrum = torch.fft.rfft(white, dim=1)
    f = torch.arange(spectrum.shape[1], dtype=torch.float32, device=device).clamp(min=1.0)
    noise = torch.fft.irfft(spectrum / f.sqrt(), n=samples, dim=1)
    return noise / rms(noise).clamp(min=1e-8)[:, None]


def add_noise_floor(waves: torch.Tensor, dbfs: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Add pink noise at an RMS level drawn from ``dbfs`` to each window."""
    level = 10.0 ** (_uniform(len(waves), dbfs, generator, waves.device) / 20.0)
    return waves + level[:, None] * pink_noise(len(waves), waves.shape[1], generator, waves.device)


def loudest_frame(waves: torch.Tensor, frame: int = 512, hop: int = 256) -> torch.Tensor:
    """The RMS of each window's loudest ``frame``-sample stretch (23 ms at 22,050 Hz)."""
    power = waves.square().unfold(1, frame, hop).mean(dim=2)
    return power.amax(dim=1).sqrt()


def place_in_scene(waves: torch.Tensor, others: torch.Tensor, barks: torch.Tensor, aug: Augmentation,
                   generator: torch.Generator) -> torch.Tensor:
    """Each window in a room: a pink floor drawn from ``aug.floor_dbfs`` (-70..-55 dBFS if unset) and, with
    chance ``aug.mix_p``, a random window of ``others`` at an RMS drawn from ``aug.background_dbfs``. A bark
    (``barks`` true) is scaled so its loudest 23 ms frame stands ``aug.bark_ratio_db`` above the RMS of what is
    under it, and never below ``aug.min_bark_dbfs``; any other window is itself a background sound at a level
    from ``aug.background_dbfs``. The sum is kept below full scale."""
    n = len(waves)
    if n == 0:
        return waves
    device = waves.device
    under = add_noise_floor(torch.zeros_like(waves), aug.floor_dbfs or (-70.0, -55.0), generator)
    if len(others):
        chosen = others[torch.randint(len(others), (n,), generator=generator).to(others.device)].to(device)
        level = 10.0 ** (_uniform(n, aug.background_dbfs, generator, device) / 20.0)
        background = chosen * (level / rms(chosen).clamp(min=1e-8))[:, None]
        under = under + torch.where(_chance(n, aug.mix_p, generator, device), background, 0.0)
    barks = barks.to(device).bool()
    ratio = 10.0 ** (_uniform(n, aug.bark_ratio_db, generator, device) / 20.0)
    bark_peak = torch.maximum(ratio * rms(under), torch.full_like(ratio, 10.0 ** (aug.min_bark_dbfs / 20.0)))
    bark_gain = bark_peak / loudest_frame(waves).clamp(min=1e-8)
    other_gain = 10.0 ** (_uniform(n, aug.background_dbfs, generator, device) / 20.0) / rms(waves).clamp(min=1e-8)
    # a silent window stays silent rather than becoming amplified rounding noise
    gain = torch.where(barks, bark_gain, other_gain).clamp(max=10.0 ** (60.0 / 20.0))
    mixed = waves * gain[:, None] + under
    peak = mixed.abs().amax(dim=1).clamp(min=1e-8)
    return mixed * (0.99 / peak).clamp(max=1.0)[:, None]


def shift_in_time(waves: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """With chance ``p``, roll each window by a random number of samples (what leaves one end comes back at
    the other)."""
    n, samples = waves.shape
    if n == 0:
        return waves
    offset = torch.randint(0, samples, (n,), generator=generator)
    offset = torch.where(torch.rand(n, generator=generator) < p, offset, torch.zeros_like(offset))
    index = (torch.arange(samples)[None, :] - offset[:, None]) % samples
    return torch.gather(waves, 1, index.to(waves.device))


def change_speed(waves: torch.Tensor, speed: float, generator: torch.Generator) -> torch.Tensor:
    """Play each window at a random speed in ``[1 - speed, 1 + speed]`` (pitch and tempo together, linear
    interpolation), keeping its length: faster windows end in silence, slower ones are cut."""
    n, samples = waves.shape
    rate = 1.0 + _uniform(n, (-speed, speed), generator, waves.device)
    # where output sample i reads from
    position = torch.arange(samples, dtype=torch.float32, device=waves.device)[None, :] * rate[:, None]
    left = position.floor().long()
    frac = position - left
    inside = left < samples - 1
    left = left.clamp(max=samples - 2)
    out = torch.gather(waves, 1, left) * (1 - frac) + torch.gather(waves, 1, left + 1) * frac
    return out * inside


def room_response(n: int, length: int, sample_rate: int, rt60_s: tuple[float, float],
                  generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` synthetic room impulse responses of ``length`` samples: Gaussian noise under a decay of 60 dB in
    an RT60 drawn from ``rt60_s``, with the direct sound at t = 0; unit energy."""
    t = torch.arange(length, dtype=torch.float32, device=device)[None, :] / sample_rate
    rt60 = _uniform(n, rt60_s, generator, device)[:, None]
    tail = torch.randn(n, length, generator=generator).to(device) * 10.0 ** (-3.0 * t / rt60)
    tail[:, 0] = 1.0
    return tail / tail.square().sum(dim=1, keepdim=True).sqrt()


def add_reverb(waves: torch.Tensor, p: float, rt60_s: tuple[float, float], generator: torch.Generator,
               sample_rate: int = 22050) -> torch.Tensor:
    """With chance ``p``, convolve a window with a room response (its energy kept), mixed with the dry
    window at a random wet share."""
    n, samples = waves.shape
    length = min(samples, int(rt60_s[1] * sample_rate))
    rir = room_response(n, length, sample_rate, rt60_s, generator, waves.device)
    size = samples + length
    wet = torch.fft.irfft(torch.fft.rfft(waves, n=size) * torch.fft.rfft(rir, n=size), n=size)[:, :samples]
    wet = wet * (rms(waves) / rms(wet).clamp(min=1e-8))[:, None]
    share = torch.rand(n, generator=generator)[:, None].to(waves.device)
    mixed = (1 - share) * waves + share * wet
    return torch.where(_chance(n, p, generator, waves.device), mixed, waves)


def low_pass(waves: torch.Tensor, p: float, cutoff_hz: tuple[float, float], generator: torch.Generator,
             sample_rate: int = 22050) -> torch.Tensor:
    """With chance ``p``, remove everything above a cut-off drawn from ``cutoff_hz`` (a brick wall in the
    frequency domain, with a 200 Hz cosine taper against ringing)."""
    n, samples = waves.shape
    spectrum = torch.fft.rfft(waves, dim=1)
    freqs = torch.fft.rfftfreq(samples, d=1.0 / sample_rate, device=waves.device)[None, :]
    cutoff = _uniform(n, cutoff_hz, generator, waves.device)[:, None]
    taper = ((cutoff - freqs) / 200.0).clamp(0.0, 1.0)
    gain = 0.5 - 0.5 * torch.cos(torch.pi * taper)
    filtered = torch.fft.irfft(spectrum * gain, n=samples, dim=1)
    return torch.where(_chance(n, p, generator, waves.device), filtered, waves)


def colour(waves: torch.Tensor, p: float, max_db: float, generator: torch.Generator,
           sample_rate: int = 22050) -> torch.Tensor:
    """With chance ``p``, filter each window by a random smooth gain curve: a tilt of up to ``max_db / 2`` dB
    per decade around 1 kHz plus three Gaussian bumps (one octave wide, up to ``max_db`` up or down) at random
    places between 100 Hz and 8 kHz; the window's RMS is kept."""
    n, samples = waves.shape
    spectrum = torch.fft.rfft(waves, dim=1)
    freqs = torch.fft.rfftfreq(samples, d=1.0 / sample_rate, device=waves.device).clamp(min=20.0)
    octave = torch.log2(freqs / 1000.0)[None, :]
    gain_db = _uniform(n, (-max_db / 2, max_db / 2), generator, waves.device)[:, None] * octave / math.log2(10.0)
    for _ in range(3):
        centre = _uniform(n, (math.log2(0.1), math.log2(8.0)), generator, waves.device)[:, None]
        height = _uniform(n, (-max_db, max_db), generator, waves.device)[:, None]
        gain_db = gain_db + height * torch.exp(-0.5 * ((octave - centre) / 0.5) ** 2)
    gain_db = gain_db.clamp(-max_db, max_db)
    filtered = torch.fft.irfft(spectrum * 10.0 ** (gain_db / 20.0), n=samples, dim=1)
    filtered = filtered * (rms(waves) / rms(filtered).clamp(min=1e-8))[:, None]
    return torch.where(_chance(n, p, generator, waves.device), filtered, waves)


def spec_augment(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Zero ``time_masks`` random runs of up to ``time_mask_frames`` frames and ``freq_masks`` runs of up to
    ``freq_mask_bands`` mel bands in each spectrogram ``[B, 1, F, T]`` (zero is the scale's floor)."""
    b, _, f, t = x.shape
    keep = torch.ones(b, 1, f, t, dtype=torch.bool)
    for count, width, size, dim in ((aug.time_masks, aug.time_mask_frames, t, 3),
                                    (aug.freq_masks, aug.freq_mask_bands, f, 2)):
        positions = torch.arange(size)
        for _ in range(count):
            w = torch.randint(0, width + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (size - w + 1).float()).long()
            inside = (positions[None, :] >= start[:, None]) & (positions[None, :] < (start + w)[:, None])
            shape = (b, 1, 1, size) if dim == 3 else (b, 1, size, 1)
            keep &= ~inside.view(shape)
    return x * keep.to(x.device, x.dtype)


def augment(waves: torch.Tensor, others: torch.Tensor, aug: Augmentation, generator: torch.Generator,
            labels: torch.Tensor | None = None) -> torch.Tensor:
    """The waveform steps in order: shift, speed, mix into other sounds, room, low-pass, colour, level, noise
    floor; with ``aug.scene`` the mixing, level and floor are ``place_in_scene``, last. ``labels`` (1 bark,
    0 other) are needed only for ``aug.bark_snr_db`` and ``aug.scene``."""
    if aug.shift_p > 0:
        waves = shift_in_time(waves, aug.shift_p, generator)
    if aug.speed > 0:
        waves = change_speed(waves, aug.speed, generator)
    if not aug.scene:
        waves = mix_into_others(waves, others, aug.mix_p, aug.mix_snr_db, generator, labels, aug.bark_snr_db)
    if aug.reverb_p > 0:
        waves = add_reverb(waves, aug.reverb_p, aug.rt60_s, generator)
    if aug.lowpass_p > 0:
        waves = low_pass(waves, aug.lowpass_p, aug.lowpass_hz, generator)
    if aug.colour_p > 0:
        waves = colour(waves, aug.colour_p, aug.colour_db, generator)
    if aug.scene:
        if labels is None:
            raise ValueError("augment: a scene needs the windows' labels")
        return place_in_scene(waves, others, labels, aug, generator)
    if aug.level_dbfs is not None:
        waves = set_level(waves, aug.level_dbfs, generator)
    if aug.floor_dbfs is not None:
        waves = add_noise_floor(waves, aug.floor_dbfs, generator)
    return waves
