"""The sampler: min-p as defined, the processors' order, named presets, settings checks."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from plugins.common.lm.sampling import (
    CUSTOM,
    SAMPLER_PRESETS,
    Sampler,
    SamplingSettings,
    matching_preset,
    preset_choices,
    sampler_preset,
)
from studio.errors import UserError


def _kept(settings: SamplingSettings, logits: list[float]) -> set[int]:
    scores = torch.tensor([logits])
    out = Sampler(settings).filter(torch.zeros((1, 1), dtype=torch.long), scores)
    return {i for i, v in enumerate(out[0].tolist()) if v != -math.inf}


def test_min_p_keeps_tokens_at_least_min_p_times_the_likeliest() -> None:
    probs = torch.tensor([0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.02])
    logits = probs.log().tolist()
    plain = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0)
    assert _kept(plain, logits) == set(range(7))  # min-p 0: nothing filtered
    for min_p in (0.06, 0.1, 0.3, 0.5, 0.9):  # no probability sits on a threshold
        expected = {i for i, p in enumerate(probs.tolist()) if p >= min_p * 0.40}
        got = _kept(SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=min_p), logits)
        assert got == expected, min_p
    # the threshold follows the model's confidence: a sure model keeps fewer tokens
    sure = torch.tensor([0.90, 0.05, 0.03, 0.02]).log().tolist()
    unsure = torch.tensor([0.30, 0.28, 0.22, 0.20]).log().tolist()
    s = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1)
    assert _kept(s, sure) == {0} and _kept(s, unsure) == {0, 1, 2, 3}


def test_min_p_reads_the_distribution_after_temperature() -> None:
    """As in ``model.generate``: temperature first, so a hotter sampler keeps more tokens."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().tolist()
    for t in (0.5, 2.0):
        p_t = torch.softmax(probs.log() / t, dim=0)
        expected = {i for i, p in enumerate(p_t.tolist()) if p >= 0.2 * float(p_t.max())}
        got = _kept(SamplingSettings(temperature=t, top_k=0, top_p=1.0, min_p=0.2), logits)
        assert got == expected, t
    assert len(_kept(SamplingSettings(temperature=2.0, top_k=0, top_p=1.0, min_p=0.2),
                     logits)) > len(_kept(SamplingSettings(temperature=0.5, top_k=0,
                                                           top_p=1.0, min_p=0.2), logits))


def test_draws_only_kept_tokens_and_a_seed_repeats_them() -> None:
    logits = torch.tensor([[2.0, 1.9, 0.0, -1.0, -3.0]]).repeat(256, 1)
    history = torch.zeros((256, 1), dtype=torch.long)
    s = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.5)
    a = Sampler(s, torch.Generator().manual_seed(4)).pick(history, logits)
    b = Sampler(s, torch.Generator().manual_seed(4)).pick(history, logits)
    assert torch.equal(a, b)
    assert set(a.tolist()) == {0, 1}  # p(2)/p(0) = e^-2 < 0.5: never drawn
    greedy = Sampler(SamplingSettings(temperature=0.0, min_p=0.5)).pick(history, logits)
    assert set(greedy.tolist()) == {0}


def test_named_presets() -> None:
    assert [p.label for p in SAMPLER_PRESETS.values()] == ["Precise", "Balanced", "Creative"]
    temps = [p.temperature for p in SAMPLER_PRESETS.values()]
    assert temps == sorted(temps)  # from steady to adventurous
    base = SamplingSettings(max_new_tokens=33, seed=5, stop=("\n",), temperature=0.1)
    for name, preset in SAMPLER_PRESETS.items():
        s = base.with_preset(name)
        s.validate()
        assert (s.max_new_tokens, s.seed, tuple(s.stop)) == (33, 5, ("\n",))
        assert {k: getattr(s, k) for k in preset.values()} == preset.values()
        assert matching_preset(preset.values()) == name
        assert sampler_preset(preset.label) is preset  # "Creative" or "creative"
    assert matching_preset({**SAMPLER_PRESETS["balanced"].values(), "min_p": 0.07}) == CUSTOM
    assert list(preset_choices()) == [CUSTOM, *SAMPLER_PRESETS]
    with pytest.raises(UserError, match="precise, balanced, creative"):
        sampler_preset("wild")


@pytest.mark.parametrize("bad", [dict(max_new_tokens=0), dict(temperature=-1), dict(top_p=0),
                                 dict(top_p=1.5), dict(min_p=-0.1), dict(min_p=1.0),
                                 dict(top_k=-1), dict(repetition_penalty=0),
                                 dict(min_new_tokens=-1)])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(UserError):
        SamplingSettings(**bad).validate()


def test_sampling_module_is_light() -> None:
    """Params modules import it: it must not pull torch or transformers in."""
    import subprocess

    code = ("import sys, plugins.common.lm.sampling; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'transformers'))))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
