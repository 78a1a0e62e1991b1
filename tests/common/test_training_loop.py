"""The shared training loop: exact resume, cadences, keep-best, early stop, budgets, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from plugins.common.ema import EMA
from plugins.common.training import QuietReporter, Schedule, TrainLoop
from studio import storage
from studio.errors import Cancelled


class Regression:
    """A tiny task that uses both its own generator (batches) and the global one (dropout),
    so resume is only exact if both come back."""

    def __init__(self, seed: int = 0, evals: list[float] | None = None,
                 fail_in: str = "") -> None:
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2),
                                       torch.nn.Linear(8, 1))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.ema = EMA(self.net, 0.9)
        self.evals = list(evals or [])
        self.fail_in = fail_in
        self.exports: list[tuple[int, str]] = []
        self.previews: list[int] = []
        self.best: list[int] = []

    def train_step(self, state: Any) -> dict[str, Any]:
        if self.fail_in == "step" and state.step == 7:
            raise RuntimeError("boom in a step")
        x = torch.randn(16, 4, generator=self.gen)
        y = x.sum(1, keepdim=True)
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.ema.update(self.net)
        return {"loss": loss.detach()}

    def evaluate(self, state: Any) -> dict[str, float]:
        if self.fail_in == "eval":
            raise RuntimeError("boom in an evaluation")
        if self.evals:
            return {"val": self.evals.pop(0)}
        return {"val": float(self.net[0].weight.detach().sum())}

    def preview(self, state: Any) -> None:
        self.previews.append(state.step)

    def export(self, state: Any, reason: str) -> None:
        self.exports.append((state.step, reason))

    def on_best(self, state: Any) -> None:
        self.best.append(state.step)

    def log_values(self, state: Any) -> dict[str, float]:
        return {"lr": 1e-2 * (1 - state.fraction)}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                "gen": self.gen.get_state(), "ema": self.ema.state_dict()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.net.load_state_dict(st["net"])
        self.opt.load_state_dict(st["opt"])
        self.gen.set_state(st["gen"].to(torch.uint8))
        self.ema.load_state_dict(st["ema"])


def _schedule(steps: int = 30, **kw: Any) -> Schedule:
    return Schedule(steps=steps, log_every=4, eval_every=10, preview_every=5,
                    checkpoint_every=10, **kw)


def test_stop_and_resume_reproduce_the_uninterrupted_run(tmp_path: Path) -> None:
    full_rep = QuietReporter()
    full = Regression()
    TrainLoop(full, _schedule(), full_rep, tmp_path / "a.safetensors").run()

    rep = QuietReporter(cancel_after=13)  # Stop lands mid-window (between logs at 12 and 16)
    first = Regression()
    loop = TrainLoop(first, _schedule(), rep, tmp_path / "b.safetensors")
    with pytest.raises(Cancelled):
        loop.run()
    assert first.exports[-1] == (13, "stopped")
    rep.cancel.clear()
    rep.cancel_after = None
    torch.manual_seed(1234)  # whatever happened in between must not matter
    second = Regression(seed=5)  # different init: everything must come from the checkpoint
    loop = TrainLoop(second, _schedule(), rep, tmp_path / "b.safetensors")
    assert loop.resume() == 13
    out = loop.run()
    assert out.step == 30 and out.reason == "done"
    for a, b in zip(full.net.parameters(), second.net.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.model.parameters(), second.ema.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert rep.history.keys() == full_rep.history.keys()
    for name, points in full_rep.history.items():
        assert rep.history[name] == points, name  # no gap, no duplicate, same values


def test_cadences_best_and_end(tmp_path: Path) -> None:
    task = Regression(evals=[3.0, 2.0, 2.5])
    out = TrainLoop(task, _schedule(best="val"), QuietReporter(), tmp_path / "c").run()
    assert task.previews == [5, 10, 15, 20, 25, 30]
    assert task.exports == [(10, "checkpoint"), (20, "checkpoint"), (30, "end")]
    assert task.best == [10, 20] and (out.best_step, out.best_value) == (20, 2.0)
    assert out.last_eval == {"val": 2.5}
    state = storage.load_state(tmp_path / "c")
    assert state["__loop__"]["step"] == 30 and state["__loop__"]["best_step"] == 20


def test_early_stop_after_patience(tmp_path: Path) -> None:
    task = Regression(evals=[1.0, 2.0, 3.0, 4.0, 5.0])
    rep = QuietReporter()
    out = TrainLoop(task, _schedule(steps=100, best="val", patience=2), rep,
                    tmp_path / "d").run()
    assert out.reason == "early" and out.step == 30 and out.best_step == 10
    assert any("Stopped early at step 30" in text for _, text in rep.logs)


def test_time_budget_ends_the_run_and_shortens_the_horizon(tmp_path: Path) -> None:
    task = Regression()
    loop = TrainLoop(task, Schedule(steps=10**6, max_seconds=0.3, log_every=50), QuietReporter(),
                     tmp_path / "e")
    out = loop.run()
    assert out.reason == "time" and 0 < out.step < 10**6
    assert loop.state.horizon == out.step and task.exports[-1] == (out.step, "end")


def test_errors_between_steps_keep_a_checkpoint_errors_inside_do_not(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="evaluation"):
        TrainLoop(Regression(fail_in="eval"), _schedule(), QuietReporter(), tmp_path / "f").run()
    assert storage.load_state(tmp_path / "f")["__loop__"]["step"] == 10
    with pytest.raises(RuntimeError, match="in a step"):
        TrainLoop(Regression(fail_in="step"), _schedule(), QuietReporter(), tmp_path / "g").run()
    assert not (tmp_path / "g").exists()


def test_checkpoints_from_before_the_shared_loop_resume(tmp_path: Path) -> None:
    old = Regression()
    storage.save_state(tmp_path / "old", {**old.state_dict(), "step": 12, "elapsed": 3.0})
    loop = TrainLoop(Regression(), _schedule(), QuietReporter(), tmp_path / "old")
    assert loop.resume() == 12 and loop.state.elapsed == 3.0


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    from studio.errors import UserError

    with pytest.raises(UserError, match="nothing to resume"):
        TrainLoop(Regression(), _schedule(), QuietReporter(), tmp_path / "none").resume()


def test_ema_warms_up_and_reads_old_checkpoints() -> None:
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.update(net)
    assert ema.updates == 1
    bare = EMA(net, 0.999)
    bare.load_state_dict(ema.model.state_dict(), updates=7)
    assert bare.updates == 7


def test_held_out_split_is_stable_and_sized() -> None:
    from plugins.common.splits import held_out

    ids = [f"img{i}.png@{i:016x}" for i in range(100)]
    a = held_out(ids, 0.1, seed=3)
    assert len(a) == 10 and a == held_out(list(reversed(ids)), 0.1, seed=3)
    assert held_out(ids, 0.1, seed=4) != a
    assert held_out(ids, 0.0) == set() and len(held_out(ids[:2], 0.9)) == 1
    grown = held_out([*ids, "new.png@ffffffffffffffff"], 0.1, seed=3)
    assert len(a & grown) >= 9  # adding a file barely moves the split


class SlowEval(Regression):
    """Its evaluation checks for Stop (a long validation pass does) and uses the global RNG."""

    def __init__(self, rep: QuietReporter | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.rep = rep

    def evaluate(self, state: Any) -> dict[str, float]:
        noise = float(torch.rand(()))
        if self.rep is not None:
            self.rep.check()
        return {"val": float(self.net[0].weight.detach().sum()) + noise}


def test_stop_inside_an_evaluation_resumes_with_it(tmp_path: Path) -> None:
    full_rep = QuietReporter()
    full = SlowEval()
    TrainLoop(full, _schedule(), full_rep, tmp_path / "a").run()

    rep = QuietReporter()
    first = SlowEval(rep)
    # the checks before it: one per step for steps 1-10, then the evaluation's at step 10
    rep.cancel_after = 10
    with pytest.raises(Cancelled):
        TrainLoop(first, _schedule(), rep, tmp_path / "b").run()
    assert storage.load_state(tmp_path / "b")["__loop__"]["eval_pending"] is True
    rep.cancel.clear()
    rep.cancel_after = None
    second = SlowEval(rep, seed=9)
    loop = TrainLoop(second, _schedule(), rep, tmp_path / "b")
    assert loop.resume() == 10
    loop.run()
    for a, b in zip(full.net.parameters(), second.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert rep.history == full_rep.history  # the step-10 evaluation is there, once
