"""plugins.common.privacy: the accounting against Opacus's own accountant, the private step
against a hand-computed one, Poisson sampling, layer replacement and its words, the
checkpoint round trip, and the Opacus convolution fix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from plugins.common import privacy
from plugins.common.privacy import PrivacySpec, PrivateTraining
from studio.errors import UserError


def _opacus(history: list[tuple[float, float, int]], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = list(history)
    return float(acc.get_epsilon(delta=delta))


@pytest.mark.parametrize(("sigma", "q", "steps", "delta"), [
    (1.1, 0.01, 1000, 1e-5), (0.7, 0.25, 40, 1e-5), (3.0, 0.001, 20_000, 1e-6),
    (0.9, 0.333, 6, 1e-5)])
def test_epsilon_is_what_opacus_rdp_accountant_says(sigma: float, q: float, steps: int,
                                                    delta: float) -> None:
    assert privacy.epsilon_for(sigma, q, steps, delta) == pytest.approx(
        _opacus([(sigma, q, steps)], delta), rel=1e-12)
    # a history of several settings adds up the same way
    hist = [(sigma, q, steps // 2), (sigma * 1.5, q / 2, steps - steps // 2)]
    assert privacy.epsilon_of(hist, delta) == pytest.approx(_opacus(hist, delta), rel=1e-12)
    assert privacy.epsilon_for(sigma, q, 0, delta) == 0.0


@pytest.mark.parametrize(("eps", "q", "steps"), [(8.0, 0.02, 500), (1.0, 0.01, 200),
                                                  (3.0, 0.3, 10)])
def test_calibrated_noise_spends_the_target_and_no_more(eps: float, q: float,
                                                        steps: int) -> None:
    sigma = privacy.calibrate(eps, 1e-5, q, steps)
    spent = _opacus([(sigma, q, steps)], 1e-5)
    assert eps * 0.95 <= spent <= eps * 1.0001


def test_an_impossible_target_is_a_clear_message() -> None:
    with pytest.raises(UserError, match="raise the privacy target"):
        privacy.calibrate(1e-9, 1e-5, 0.9, 10_000)


def _toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def test_a_private_step_is_clipping_noise_and_the_mean_by_hand() -> None:
    x = torch.randn(20, 3)
    spec = PrivacySpec(noise_multiplier=0.8, max_grad_norm=0.05, noise_seed=9)
    model = _toy()
    reference = _toy()  # same weights, plain autograd
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    dp = PrivateTraining(model, opt, spec, records=20, batch_size=5, steps=10,
                         loss_reduction="sum")
    idx = dp.sample()
    # the noise the step will add: the same generator, the same draws, in parameter order
    noise_gen = torch.Generator().set_state(dp.noise.get_state())
    noises = [torch.normal(0.0, 0.8 * 0.05, p.shape, generator=noise_gen)
              for p in reference.parameters()]
    before = [p.detach().clone() for p in reference.parameters()]
    per: list[list[torch.Tensor]] = []
    for i in idx.tolist():
        grads = torch.autograd.grad(reference(x[i:i + 1]).sum(), list(reference.parameters()))
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        per.append([g * min(1.0, 0.05 / (float(norm) + 1e-6)) for g in grads])
    dp.zero_grad()
    dp.backward(model(x[idx]).sum())
    dp.step()
    for k, (p, b, n) in enumerate(zip(model.parameters(), before, noises, strict=True)):
        total = sum((g[k] for g in per), torch.zeros_like(b))
        expected = b - (total + n) / 5  # SGD, lr 1: minus the noisy sum over the expected batch
        assert torch.allclose(p.detach(), expected, atol=1e-6)
    assert dp.steps == 1
    assert dp.epsilon() == pytest.approx(_opacus([(0.8, 0.25, 1)], dp.delta))


def test_poisson_sampling_draws_each_record_with_the_sample_rate() -> None:
    dp = PrivateTraining(_toy(), torch.optim.SGD(_toy().parameters(), lr=0.1),
                         PrivacySpec(noise_multiplier=1.0, noise_seed=1), records=200,
                         batch_size=10, steps=10)
    sizes = []
    counts = torch.zeros(200)
    for _ in range(400):
        idx = dp.sample()
        assert idx.unique().numel() == idx.numel()  # no record twice in a batch
        counts[idx] += 1
        sizes.append(idx.numel())
    assert abs(sum(sizes) / len(sizes) - 10) < 1.0
    assert len(set(sizes)) > 5  # the batch size varies
    assert counts.min() > 0  # every record is drawn sometimes


def test_an_empty_draw_is_a_noise_only_step_the_accountant_counts() -> None:
    model = _toy()
    before = [p.detach().clone() for p in model.parameters()]
    dp = PrivateTraining(model, torch.optim.SGD(model.parameters(), lr=0.1),
                         PrivacySpec(noise_multiplier=1.0, noise_seed=1), records=50,
                         batch_size=1, steps=10)
    dp.zero_grad()
    dp.step()  # nothing was drawn, nothing ran backward
    assert dp.steps == 1
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(),
                                                              strict=True))


def test_a_checkpoint_continues_the_same_draws_and_the_same_spending(tmp_path) -> None:
    from studio import storage

    def make() -> PrivateTraining:
        m = _toy()
        return PrivateTraining(m, torch.optim.SGD(m.parameters(), lr=0.1),
                               PrivacySpec(epsilon=4.0), records=100, batch_size=10,
                               steps=50)  # secret seeds: two runs draw differently

    a = make()
    for _ in range(3):
        a.sample()
        a.zero_grad()
        a.step()
    path = storage.save_state(tmp_path / "ckpt.safetensors", {"privacy": a.state_dict()})
    st = storage.load_state(path)["privacy"]
    b = make()
    b.load_state_dict(st)
    assert b.steps == 3 and b.epsilon() == pytest.approx(a.epsilon())
    assert b.noise_multiplier == a.noise_multiplier
    assert torch.equal(a.sample(), b.sample())
    assert torch.equal(a.noise.get_state(), b.noise.get_state())
    with pytest.raises(UserError, match="same data and batch size"):
        make().load_state_dict({**st, "records": 99})


def test_prepare_model_replaces_what_opacus_cannot_train_and_says_so() -> None:
    from opacus.validators import ModuleValidator
    from torch.nn.utils.parametrizations import spectral_norm

    model = nn.Sequential(spectral_norm(nn.Conv2d(1, 4, 3)), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    fixed, notes = privacy.prepare_model(model, "the test network")
    assert ModuleValidator.validate(fixed, strict=False) == []
    assert sum(isinstance(m, nn.GroupNorm) for m in fixed.modules()) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.modules())
    text = " ".join(notes)
    assert "Spectral normalisation was removed from 1 layer(s) of the test network" in text
    assert "2 batch-norm layer(s) of the test network were replaced by group norm" in text
    _, said = privacy.prepare_model(_toy(), "a plain network")
    assert said == []


def test_per_example_gradients_of_channels_last_convolutions_are_right() -> None:
    """Opacus 1.6 unfolds a convolution's input as if it were contiguous: channels-last
    inputs (diffusers' UNet makes them) got zeros or other examples' values. Fixed here."""
    conv = nn.Conv2d(8, 8, 3, padding=1)
    dp = PrivateTraining(conv, torch.optim.SGD(conv.parameters(), lr=0.1),
                         PrivacySpec(noise_multiplier=1.0, noise_seed=0), records=10,
                         batch_size=2, steps=1, loss_reduction="sum")
    x = torch.randn(3, 4, 4, 8).permute(0, 3, 1, 2)  # a channels-last layout
    dp.backward((conv(x) ** 2).sum())
    for i in range(3):
        g, = torch.autograd.grad((nn.functional.conv2d(x[i:i + 1], conv.weight, conv.bias,
                                                       padding=1) ** 2).sum(), [conv.weight])
        assert torch.allclose(conv.weight.grad_sample[i], g, rtol=1e-4, atol=1e-5)


def test_the_params_fields_make_a_spec() -> None:
    @dataclass
    class P:
        private: bool = True
        epsilon: float = 3.0
        delta: float = 0.0
        noise_multiplier: float = 0.0
        max_grad_norm: float = 0.5
        noise_seed: int | None = None

    spec = privacy.spec_of(P())
    assert spec is not None and spec.epsilon == 3.0 and spec.max_grad_norm == 0.5
    assert privacy.spec_of(P(private=False)) is None
    assert PrivacySpec.from_json(spec.to_json()) == spec
    with pytest.raises(UserError, match="clipping norm"):
        privacy.spec_of(P(max_grad_norm=0.0))
    assert privacy.default_delta(1000) == 1e-5 and privacy.default_delta(10) == 1e-5
    assert privacy.default_delta(10_000_000) == pytest.approx(1e-7)
    assert math.isclose(privacy.default_delta(100_000), 1e-5)


def test_the_words_for_the_log() -> None:
    m = _toy()
    dp = PrivateTraining(m, torch.optim.SGD(m.parameters(), lr=0.1),
                         PrivacySpec(epsilon=2.0), records=1000, batch_size=10, steps=100,
                         unit="image")
    said = dp.describe()
    assert "1,000 training images" in said and "target ε = 2" in said
    assert dp.words().startswith("Privacy spent: ε = 0.00")
    with pytest.raises(UserError, match="at least 8"):
        PrivateTraining(_toy(), torch.optim.SGD(_toy().parameters(), lr=0.1),
                        PrivacySpec(epsilon=2.0), records=5, batch_size=1, steps=10)
