"""Training privately: differentially private SGD (DP-SGD) through Opacus, for any trainer of
the shared loop.

What "train privately" means here (Abadi et al. 2016, as Opacus implements it):

- every training **record** (an image, a passage of text) is drawn into a step's batch by
  **Poisson sampling**: each one independently with probability ``q = batch / records``, so
  batches vary in size and the accountant may use privacy amplification by subsampling;
- each record's gradient is computed on its own (Opacus's ``GradSampleModule``) and **clipped**
  to a norm of at most ``max_grad_norm``;
- **Gaussian noise** of standard deviation ``noise_multiplier * max_grad_norm`` is added to the
  sum of the clipped gradients before the optimiser sees it (Opacus's ``DPOptimizer``);
- an **accountant** (Opacus's RDP accountant) adds up what every step spent, as the ε of an
  (ε, δ) guarantee: whatever one record holds, the trained model is almost as likely to come out
  without it (within a factor of e^ε, except with probability δ).

Opacus's ``PrivacyEngine.make_private`` does these three things around a PyTorch
``DataLoader``. The studio's trainers draw their batches from tensors in memory with generators
of their own (that is what makes resume exact), so :class:`PrivateTraining` assembles the same
Opacus pieces (``GradSampleModule``, ``DPOptimizer``, ``RDPAccountant``, the sampler's Poisson
rule) around them instead.

Two generators of its own decide which records a step draws and the noise it adds. They are
seeded from the operating system's entropy unless the user asks for a noise seed: someone who
knows the seed knows which records trained at each step and the noise that hid them, and the
guarantee does not hold against them. Their state is saved in the run's checkpoint (which stays
on this machine), so a stopped run resumes exactly; the exported model holds neither.

Layers Opacus cannot train privately are replaced the way Opacus recommends
(``ModuleValidator.fix``: batch norm becomes group norm, ...); spectral normalisation (a
parametrisation Opacus's per-example gradients cannot see through) is folded into the plain
weights first. :func:`prepare_model` says what it changed, in words for the run's log.

Light at import (no torch, no Opacus) so that params modules can use the field types below.
No Qt.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from studio.errors import UserError
from studio.params import Group, Help, Label, Range, Special

#: the live metric (and its plot's title): what the accountant says the run spent so far
METRIC = "privacy spent (ε)"
DEFAULT_EPSILON = 8.0
DEFAULT_MAX_GRAD_NORM = 1.0
#: below this many records the guarantee means little and the noise drowns the signal
MIN_RECORDS = 8

# ----------------------------------------------------------------------------------------------
# The params fields every private trainer offers (the job's params class declares them)
# ----------------------------------------------------------------------------------------------
PRIVACY = Group("Privacy")
Private = Annotated[bool, Label("Train privately"), PRIVACY,
                    Help("differential privacy (DP-SGD): each example's influence on the model "
                         "is clipped and hidden under noise, so the model cannot reveal much "
                         "about any one example. Costs quality and time")]
Epsilon = Annotated[float, Label("Privacy target (ε)"), Range(0.1, 100.0, 0.5), PRIVACY,
                    Help("how much the run may reveal about any one example: lower is more "
                         "private (1 strong, 8 common). The noise is chosen to reach it at the "
                         "last step; ignored when a noise multiplier is given")]
Delta = Annotated[float, Label("Privacy failure chance (δ)"), Range(0.0, 0.01, 1e-6),
                  Special("automatic (1/examples or smaller)"), PRIVACY,
                  Help("the small chance the ε guarantee does not hold; keep it below one in "
                       "the number of examples (0: automatic, at most 1e-5)")]
NoiseMultiplier = Annotated[float, Label("Noise multiplier"), Range(0.0, 100.0, 0.1),
                            Special("from the privacy target"), PRIVACY,
                            Help("noise added to each step, in units of the clipping norm "
                                 "(0: chosen to reach the privacy target)")]
MaxGradNorm = Annotated[float, Label("Clip each example at"), Range(0.001, 1000.0, 0.1),
                        PRIVACY,
                        Help("largest gradient norm one example may contribute to a step")]
NoiseSeed = Annotated[int | None, Label("Noise seed"), Range(0, 2**31 - 1),
                      Special("secret (drawn fresh)"), PRIVACY,
                      Help("only to reproduce a private run exactly: whoever knows this seed "
                           "knows the noise, and the guarantee does not hold against them")]


@dataclass
class PrivacySpec:
    """What the user asked for (recorded with the run; JSON-able)."""

    epsilon: float = DEFAULT_EPSILON  # target, reached at the planned last step
    delta: float = 0.0  # 0: automatic, min(1e-5, 1 / records)
    noise_multiplier: float = 0.0  # 0: calibrated from the target epsilon
    max_grad_norm: float = DEFAULT_MAX_GRAD_NORM
    noise_seed: int | None = None  # None: secret, from the operating system

    def validate(self) -> None:
        if self.noise_multiplier <= 0 and not self.epsilon > 0:
            raise UserError("private training needs a privacy target ε above 0 (--epsilon) "
                            "or a noise multiplier (--noise-multiplier)")
        if self.noise_multiplier < 0:
            raise UserError("the noise multiplier cannot be negative")
        if not self.max_grad_norm > 0:
            raise UserError("the clipping norm (--max-grad-norm) must be above 0")
        if not 0.0 <= self.delta < 1.0:
            raise UserError("δ (--delta) must be at least 0 and below 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PrivacySpec | None:
        if not data:
            return None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def spec_of(p: Any) -> PrivacySpec | None:
    """The privacy settings of a job's params (fields ``private``, ``epsilon``, ``delta``,
    ``noise_multiplier``, ``max_grad_norm``, ``noise_seed``); None when it trains normally."""
    if not getattr(p, "private", False):
        return None
    spec = PrivacySpec(epsilon=float(p.epsilon), delta=float(p.delta),
                       noise_multiplier=float(p.noise_multiplier),
                       max_grad_norm=float(p.max_grad_norm),
                       noise_seed=getattr(p, "noise_seed", None))
    spec.validate()
    return spec


def default_delta(records: int) -> float:
    """δ when the user leaves it automatic: 1e-5, or 1/records when that is smaller (δ must
    stay well under the chance of picking any one record, or the guarantee is empty)."""
    return min(1e-5, 1.0 / max(1, records))


# ----------------------------------------------------------------------------------------------
# Accounting
# ----------------------------------------------------------------------------------------------
def _alphas() -> list[float]:
    from opacus.accountants import RDPAccountant

    return list(RDPAccountant.DEFAULT_ALPHAS)


_RDP_CACHE: dict[tuple[float, float], Any] = {}


def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> Any:
    """The Rényi DP of one step at every one of the accountant's default orders (computed
    once per setting: a run's ε after n steps is n times this, converted; that is exactly
    what ``RDPAccountant.get_epsilon`` computes, without redoing the slow part every time the
    curve is logged)."""
    from opacus.accountants.analysis import rdp as analysis

    key = (float(noise_multiplier), float(sample_rate))
    if key not in _RDP_CACHE:
        if len(_RDP_CACHE) > 64:
            _RDP_CACHE.clear()
        _RDP_CACHE[key] = analysis.compute_rdp(q=key[1], noise_multiplier=key[0], steps=1,
                                               orders=_alphas())
    return _RDP_CACHE[key]


def epsilon_of(history: list[tuple[float, float, int]], delta: float) -> float:
    """ε of an accountant's history of ``(noise_multiplier, sample_rate, steps)`` at
    ``delta``, as Opacus's ``RDPAccountant`` computes it (the same orders and conversion)."""
    from opacus.accountants.analysis import rdp as analysis

    if not history:
        return 0.0
    total = sum(_rdp_one_step(s, q) * int(n) for s, q, n in history)
    with warnings.catch_warnings():  # "optimal order is the largest alpha": ε is still valid
        warnings.simplefilter("ignore")
        eps, _ = analysis.get_privacy_spent(orders=_alphas(), rdp=total, delta=delta)
    return float(eps)


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε spent by ``steps`` Poisson-sampled steps at ``sample_rate`` with ``noise_multiplier``
    (Opacus's RDP accountant)."""
    if steps <= 0:
        return 0.0
    return epsilon_of([(noise_multiplier, sample_rate, steps)], delta)


def calibrate(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier that spends at most ``epsilon`` in ``steps`` steps.

    Opacus's own search (``get_noise_multiplier``), run over the accountant's whole-number
    orders only: each try is then some forty times faster, and since the reported ε uses every
    default order (a finer grid can only lower it), the run spends at most the target."""
    from opacus.accountants.utils import get_noise_multiplier

    whole = [a for a in _alphas() if float(a).is_integer()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                              sample_rate=sample_rate, steps=max(1, steps),
                                              accountant="rdp", epsilon_tolerance=0.01,
                                              alphas=whole))
    except ValueError as exc:
        raise UserError(f"no amount of noise reaches ε = {epsilon:g} in {steps:,} steps "
                        f"({exc}): raise the privacy target or train fewer steps") from None


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
def _patch_conv_grad_sampler() -> None:
    """Opacus 1.6's per-example gradient for ``Conv2d`` unfolds the input with ``as_strided``
    as if it were contiguous NCHW; a channels-last or permuted input (diffusers' UNet makes
    them at its lowest resolutions) gets silently wrong per-example gradients (zeros, or values
    read across examples, which would also break the guarantee). Giving it contiguous tensors
    fixes both (tested against per-example autograd in ``tests/common/test_privacy.py``)."""
    import torch
    from opacus import GradSampleModule

    samplers = GradSampleModule.GRAD_SAMPLERS
    original = samplers.get(torch.nn.Conv2d)
    if original is None or getattr(original, "_studio_contiguous", False):
        return

    def conv_grad_sample(layer: Any, activations: Any, backprops: Any) -> Any:
        return original(layer, [a.contiguous() for a in activations], backprops.contiguous())

    conv_grad_sample._studio_contiguous = True  # type: ignore[attr-defined]
    samplers[torch.nn.Conv2d] = conv_grad_sample


def prepare_model(model: Any, what: str = "the model") -> tuple[Any, list[str]]:
    """Make ``model`` trainable by DP-SGD; returns it (possibly a new object: use the result)
    and what was changed, one plain sentence each, for the run's log.

    Spectral normalisation is folded into plain weights (Opacus computes per-example gradients
    of a layer's own weights, not of a parametrisation); then ``opacus.validators.
    ModuleValidator.fix`` replaces what Opacus cannot train privately (batch norm, which mixes
    the examples of a batch, becomes group norm). Anything still unsupported is a
    :class:`UserError` naming it."""
    from opacus.validators import ModuleValidator
    from torch.nn.utils import parametrize

    notes: list[str] = []
    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                folded += 1
    if folded:
        notes.append(f"Spectral normalisation was removed from {folded} layer(s) of {what}: "
                     "Opacus cannot compute each example's gradient through it, so those "
                     "layers train as plain layers.")
    before = _layer_counts(model)
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        model = ModuleValidator.fix(model)
        after = _layer_counts(model)
        for kind, n in before.items():
            gone = n - after.get(kind, 0)
            if gone > 0:
                notes.append(_replacement_words(kind, gone, what))
        left = ModuleValidator.validate(model, strict=False)
        if left:
            raise UserError(f"{what} has layers that cannot be trained privately even after "
                            f"Opacus's replacements: {str(left[0]).splitlines()[0]}")
    return model, notes


def _layer_counts(model: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in model.modules():
        name = type(m).__name__
        counts[name] = counts.get(name, 0) + 1
    return counts


def _replacement_words(kind: str, n: int, what: str) -> str:
    if kind.startswith("BatchNorm"):
        return (f"{n} batch-norm layer(s) of {what} were replaced by group norm, as Opacus "
                "recommends: batch norm mixes the examples of a batch, which per-example "
                "privacy cannot allow.")
    if kind in ("LSTM", "GRU", "RNN"):
        return f"{n} {kind} layer(s) of {what} were replaced by Opacus's private version."
    if kind == "MultiheadAttention":
        return (f"{n} attention layer(s) of {what} were replaced by Opacus's private "
                "version.")
    return f"{n} {kind} layer(s) of {what} were replaced the way Opacus recommends."


# ----------------------------------------------------------------------------------------------
# One private network's training
# ----------------------------------------------------------------------------------------------
class PrivateTraining:
    """DP-SGD for one network: per-example gradients, clipping, noise, Poisson sampling and
    the accountant.

    Build it after :func:`prepare_model` and after the optimiser (over the prepared model's
    parameters); then, each step: :meth:`sample` the batch's record indices, run the model
    forward as usual, :meth:`backward` the loss (reduced as ``loss_reduction`` says over the
    rows of the batch), :meth:`step`, and :meth:`zero_grad`.

    Args:
        model: the network (already through :func:`prepare_model`); hooks are added to it.
        optimizer: its optimiser; use :attr:`optimizer` (the private one) from now on.
        spec: what the user asked for.
        records: how many training records there are (N).
        batch_size: the expected batch (``q = batch_size / records``).
        steps: the planned number of optimiser steps (the target ε is reached there).
        device: where the parameters live (the noise is drawn there).
        loss_reduction: ``"mean"`` when the loss is averaged over the batch's rows, ``"sum"``
            when it is their sum; the optimiser's update is the noisy sum divided by
            ``batch_size`` either way.
        unit: what one record is, in words ("image", "passage of 256 tokens").
    """

    def __init__(self, model: Any, optimizer: Any, spec: PrivacySpec, *, records: int,
                 batch_size: int, steps: int, device: Any = "cpu",
                 loss_reduction: str = "mean", unit: str = "example") -> None:
        import torch
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.optimizers import DPOptimizer

        spec.validate()
        if records < MIN_RECORDS:
            raise UserError(f"private training needs at least {MIN_RECORDS} training "
                            f"{unit}s; this data has {records}")
        if batch_size > records:
            raise UserError(f"private training draws about {batch_size} {unit}s a step, but "
                            f"there are only {records}: lower the batch size to at most "
                            f"{records // 2} or add data")
        self.spec = spec
        self.records = int(records)
        self.batch_size = int(batch_size)
        self.unit = unit
        self.sample_rate = self.batch_size / self.records
        self.delta = spec.delta or default_delta(self.records)
        self.planned_steps = int(steps)
        self.noise_multiplier = (spec.noise_multiplier if spec.noise_multiplier > 0 else
                                 calibrate(spec.epsilon, self.delta, self.sample_rate, steps))
        _patch_conv_grad_sampler()
        self.model = model
        with _quiet():
            self.gsm = GradSampleModule(model, batch_first=True, loss_reduction=loss_reduction,
                                        strict=True)
        self.params = [p for p in model.parameters() if p.requires_grad]
        seed = spec.noise_seed if spec.noise_seed is not None else secrets.randbits(62)
        self.sampler = torch.Generator().manual_seed(seed)
        dev = torch.device(device)
        self.noise = torch.Generator(device=dev).manual_seed(seed + 1)
        self.optimizer = DPOptimizer(optimizer, noise_multiplier=self.noise_multiplier,
                                     max_grad_norm=spec.max_grad_norm,
                                     expected_batch_size=self.batch_size,
                                     loss_reduction="mean", generator=self.noise)
        self.accountant = RDPAccountant()
        self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(self.sample_rate))

    # -- each step ------------------------------------------------------------------------------
    def sample(self) -> Any:
        """This step's records: each one independently with probability ``q`` (Poisson
        sampling, Opacus's ``UniformWithReplacementSampler`` rule), as sorted indices. May be
        empty: the step then adds only noise (still counted by the accountant)."""
        import torch

        take = torch.rand(self.records, generator=self.sampler) < self.sample_rate
        return take.nonzero().flatten()

    def backward(self, loss: Any) -> None:
        """``loss.backward()``, recording each row's gradient."""
        with _quiet():
            loss.backward()

    def step(self) -> None:
        """Clip each row's gradient, add the noise, update, and count the step."""
        import torch

        for p in self.params:  # an empty batch ran no backward: zero rows of gradients
            if getattr(p, "grad_sample", None) is None:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
        with _quiet():
            self.optimizer.step()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    @contextlib.contextmanager
    def hooks_off(self) -> Iterator[None]:
        """Run the model without recording per-example gradients (another network's step
        through it, an evaluation with gradients)."""
        self.gsm.disable_hooks()
        try:
            yield
        finally:
            self.gsm.enable_hooks()

    def close(self) -> None:
        """Remove Opacus's hooks from the model (before saving or reusing it)."""
        with contextlib.suppress(Exception):
            self.gsm._close()

    # -- what was spent -------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return sum(int(n) for _, _, n in self.accountant.history)

    def epsilon(self) -> float:
        """ε spent so far (0 before the first step)."""
        return epsilon_of(self.accountant.history, self.delta)

    def projected_epsilon(self, steps: int) -> float:
        """ε the run will have spent after ``steps`` steps in all."""
        return epsilon_for(self.noise_multiplier, self.sample_rate, steps, self.delta)

    def summary(self) -> dict[str, Any]:
        """What the run's config, manifest and model record about its privacy."""
        return {"epsilon": self.epsilon(), "delta": self.delta,
                "target_epsilon": None if self.spec.noise_multiplier > 0 else self.spec.epsilon,
                "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": self.spec.max_grad_norm, "sample_rate": self.sample_rate,
                "expected_batch": self.batch_size, "records": self.records, "unit": self.unit,
                "steps": self.steps, "accountant": "rdp", "sampling": "poisson",
                "library": f"opacus {_opacus_version()}"}

    def describe(self) -> str:
        """The settings in words, for the log at the start of a run."""
        target = (f"reaching ε = {self.projected_epsilon(self.planned_steps):.2f} "
                  if self.spec.noise_multiplier > 0 else
                  f"to reach the target ε = {self.spec.epsilon:g} ")
        return (f"Training privately (DP-SGD with Opacus): each step draws every one of the "
                f"{self.records:,} training {self.unit}s with probability "
                f"{self.sample_rate:.3g} (about {self.batch_size} a step), clips each one's "
                f"gradient at {self.spec.max_grad_norm:g} and adds noise "
                f"{self.noise_multiplier:.3g} times that, {target}after "
                f"{self.planned_steps:,} steps, with δ = {self.delta:.2g}.")

    def words(self) -> str:
        """What was spent, in words, for the log at the end (or on Stop)."""
        eps = self.epsilon()
        return (f"Privacy spent: ε = {eps:.2f} (δ = {self.delta:.2g}) after {self.steps:,} "
                f"private steps. Lower is more private: whether or not any one training "
                f"{self.unit} was used, the model comes out nearly the same (at most e^ε ≈ "
                f"{math.exp(min(eps, 50.0)):.3g} times more or less likely).")

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The accountant's history and both generators (the checkpoint stays on this
        machine; the exported model holds none of it)."""
        return {"history": [[float(s), float(q), int(n)]
                            for s, q, n in self.accountant.history],
                "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
                "delta": self.delta, "records": self.records, "batch_size": self.batch_size,
                "sampler": self.sampler.get_state(), "noise": self.noise.get_state()}

    def load_state_dict(self, st: Mapping[str, Any]) -> None:
        """Continue a stopped private run: the same noise and sampling as it started with
        (a run resumed with a different data size or batch is refused), and what it spent."""
        import torch

        if int(st["records"]) != self.records or int(st["batch_size"]) != self.batch_size:
            raise UserError(f"this private run trained on {st['records']} {self.unit}s, "
                            f"{st['batch_size']} a step; it now has {self.records}, "
                            f"{self.batch_size} a step. Resume it with the same data and "
                            "batch size (its privacy accounting depends on them)")
        self.noise_multiplier = float(st["noise_multiplier"])
        self.optimizer.noise_multiplier = self.noise_multiplier
        self.sample_rate = float(st["sample_rate"])
        self.delta = float(st["delta"])
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in st["history"]]
        self.sampler.set_state(st["sampler"].to("cpu", torch.uint8))
        self.noise.set_state(st["noise"].to("cpu", torch.uint8))


def record_words(summary: Mapping[str, Any]) -> str:
    """A recorded privacy summary (``PrivateTraining.summary``) in one sentence."""
    return (f"trained privately: ε = {float(summary['epsilon']):.2f}, "
            f"δ = {float(summary['delta']):.2g}, per {summary.get('unit', 'example')}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Opacus's hooks make torch warn that a full backward hook fires without input
    gradients (the first layer's input is data): expected here, and not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook")
        warnings.filterwarnings("ignore", message="Using a non-full backward hook")
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        yield


def _opacus_version() -> str:
    try:
        from opacus import __version__
    except ImportError:  # pragma: no cover
        return "?"
    return str(__version__)
