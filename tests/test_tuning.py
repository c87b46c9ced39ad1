"""Early stopping of iterative models (eval/tuning.py)."""

from __future__ import annotations

import pytest


def test_smoothed_early_stopping_prefers_a_plateau_to_a_lucky_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Single checks take the first spike (epoch 20); the trailing mean of 3 takes the end of
    the plateau reached later (epoch 60), and restores that epoch's state."""
    from types import SimpleNamespace

    from llmrec.eval import tuning

    scores = iter([0.03, 0.056, 0.050, 0.055, 0.055, 0.054])
    monkeypatch.setattr(tuning, "valid_score", lambda model, split: next(scores))

    class Scripted:
        config = SimpleNamespace(epochs=60)
        state = 0

        def fit_epochs(self, data):  # noqa: ANN001, ANN202
            for epoch in range(1, 61):
                self.state = epoch
                yield epoch

        def _state(self) -> dict[str, int]:
            return {"epoch": self.state}

        def _load_state(self, s: dict[str, int]) -> None:
            self.state = s["epoch"]

    split = SimpleNamespace(valid_train=None)
    m = Scripted()
    assert (
        tuning._fit_early_stopped(m, split, tuning.EarlyStopping(10, 10, 60, 3), {})[1] == 60
        and m.state == 60
    )
    scores = iter([0.03, 0.056, 0.050, 0.055, 0.055, 0.054])
    m = Scripted()
    assert (
        tuning._fit_early_stopped(m, split, tuning.EarlyStopping(10, 10, 60, 1), {})[1] == 20
        and m.state == 20
    )
