"""The writer's training task: the shared :class:`~plugins.common.lm.training.LMTask`, which
also resumes runs stopped before the studio had one training loop.

Those runs wrote ``studio-writer-checkpoint-1``: the writer's own step, time and keep-best
state, which :meth:`WriterTask.upgrade_state` turns into the shared loop's.
"""

from __future__ import annotations

from typing import Any

from plugins.common.lm.training import LMTask
from plugins.common.training import LOOP_KEY


class WriterTask(LMTask):
    """:class:`LMTask` for the writer's runs (new and old checkpoints alike)."""

    def upgrade_state(self, state: dict[str, Any]) -> None:
        if LOOP_KEY in state or "schedule" not in state:
            return
        history = state.get("history")
        state[LOOP_KEY] = {
            "steps": self.cfg.steps, "step": int(state["step"]),
            "elapsed": float(state["schedule"]["elapsed"]),
            "best_value": state.get("best_val"), "best_step": state.get("best_step"),
            "bad_evals": int(state.get("bad_evals", 0)),
            "last_eval_step": int(history[-1]["step"]) if history else -1,
            "sessions": 1}
