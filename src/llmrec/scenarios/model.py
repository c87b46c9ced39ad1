"""A factorisation model trained with a full softmax over each scenario's items, in three modes
that differ only in what they share, so a comparison isolates the sharing:

- ``separate``: one model per scenario, trained on that scenario's events alone;
- ``pooled``: one model on every scenario's events, nothing scenario-specific;
- ``multi``: shared user and item embeddings (and the shared projection of item text vectors)
  plus, per scenario, a residual linear user tower and a scenario vector:
  z(u, s) = e_u + W_s e_u + b_s, initialised at zero, so a scenario departs from the shared
  user only as far as its own events ask (shared-bottom with per-scenario towers).

Item vectors: a learned embedding plus, when text vectors are given, a learned projection of
them (shared by all scenarios: the same encoder understands every domain's items).
Epochs stop early on the mean validation NDCG@10 over scenarios (per scenario when separate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmrec.config import get_settings
from llmrec.eval.evaluate import evaluate_scores
from llmrec.scenarios.data import ScenarioData

if TYPE_CHECKING:
    import torch

MODES = ("separate", "pooled", "multi")


class MultiScenarioMF:
    def __init__(
        self,
        mode: str = "multi",
        dim: int = 64,
        epochs: int = 60,
        patience: int = 5,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        tower_decay: float = 0.0,
        batch_size: int = 1024,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.dim, self.epochs, self.patience = mode, dim, epochs, patience
        self.lr, self.weight_decay, self.batch_size, self.seed = lr, weight_decay, batch_size, seed
        self.tower_decay = tower_decay  # pulls the scenario-specific parts towards the shared
        self.nets: dict[str | None, torch.nn.Module] = {}
        self.best_epoch: dict[str | None, int] = {}
        self.best_validation: dict[str | None, float] = {}  # mean validation NDCG@10

    def fit(self, data: ScenarioData, item_vectors: np.ndarray | None = None) -> MultiScenarioMF:
        """``item_vectors``: (global items x d) text vectors, or None."""
        import torch

        torch.set_num_threads(get_settings().threads)
        self.data = data
        groups = data.names if self.mode == "separate" else [None]
        for only in groups:
            self._fit(data, item_vectors, only)
        return self

    def score(self, task: int, user_local: np.ndarray) -> np.ndarray:
        """(users x the task's items) scores; users as the task's local indices."""
        import torch

        t = self.data.tasks[task]
        net = self.nets[t.name if self.mode == "separate" else None]
        with torch.no_grad():
            u = torch.as_tensor(t.users[user_local])
            s = torch.full((len(u),), task)
            return net.logits(u, s, torch.as_tensor(t.items)).numpy()

    def validation_ndcg(self, task: int) -> float:
        t = self.data.tasks[task]
        s = self.score(task, t.valid.user_idx)
        return evaluate_scores(s, t.valid, t.train, (10,), None, False).metrics["ndcg@10"]

    def _fit(self, data: ScenarioData, vectors: np.ndarray | None, only: str | None) -> None:
        """Train the network for ``only`` (None: every scenario) into ``self.nets``."""
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        log = data.train_log(only)
        net = _Net(
            len(data.users),
            len(data.items),
            len(data.tasks),
            self.dim,
            vectors,
            self.mode == "multi",
        )
        mask = torch.zeros(len(data.tasks), len(data.items), dtype=torch.bool)
        for s, t in enumerate(data.tasks):
            mask[s, torch.as_tensor(t.items)] = True
        own = [p for n, p in net.named_parameters() if n in ("tower", "shift")]
        shared = [p for n, p in net.named_parameters() if n not in ("tower", "shift")]
        groups = [{"params": shared, "weight_decay": self.weight_decay}]
        if own:
            groups.append({"params": own, "weight_decay": self.tower_decay})
        opt = torch.optim.AdamW(groups, lr=self.lr)
        users = torch.as_tensor(log["user"].to_numpy().copy())
        items = torch.as_tensor(log["item"].to_numpy().copy())
        scen = torch.as_tensor(log["scenario"].to_numpy().copy())
        tasks = [s for s, t in enumerate(data.tasks) if only is None or t.name == only]
        self.nets[only] = net  # validation_ndcg scores through it while it trains
        best, best_epoch, best_state, waited = -1.0, 0, None, 0
        for epoch in range(1, self.epochs + 1):
            net.train()
            perm = torch.as_tensor(rng.permutation(len(log)))
            for lo in range(0, len(log), self.batch_size):
                b = perm[lo : lo + self.batch_size]
                logits = net.logits_all(users[b], scen[b]).masked_fill(~mask[scen[b]], -1e9)
                loss = torch.nn.functional.cross_entropy(logits, items[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            ndcg = float(np.mean([self.validation_ndcg(s) for s in tasks]))
            if ndcg > best:
                best, best_epoch, waited = ndcg, epoch, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
                if waited >= self.patience:
                    break
        assert best_state is not None
        net.load_state_dict(best_state)
        net.eval()
        self.best_epoch[only], self.best_validation[only] = best_epoch, best


def _Net(
    n_users: int, n_items: int, n_scenarios: int, dim: int, vectors: np.ndarray | None, towers: bool
) -> torch.nn.Module:
    """The network, built where torch is imported (torch is an optional extra)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user = nn.Embedding(n_users, dim)
            self.item = nn.Embedding(n_items, dim)
            nn.init.normal_(self.user.weight, std=0.05)
            nn.init.normal_(self.item.weight, std=0.05)
            self.bias = nn.Parameter(torch.zeros(n_items))
            self.text = None
            if vectors is not None:
                self.register_buffer("vectors", torch.as_tensor(vectors, dtype=torch.float32))
                self.text = nn.Linear(vectors.shape[1], dim, bias=False)
            self.towers = towers
            if towers:
                self.tower = nn.Parameter(torch.zeros(n_scenarios, dim, dim))
                self.shift = nn.Parameter(torch.zeros(n_scenarios, dim))

        def users(self, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            z = self.user(u)
            if self.towers:
                z = z + torch.bmm(self.tower[s], z.unsqueeze(-1)).squeeze(-1) + self.shift[s]
            return z

        def items(self, idx: torch.Tensor | None = None) -> torch.Tensor:
            v = self.item.weight
            if self.text is not None:
                v = v + self.text(self.vectors)
            return v if idx is None else v[idx]

        def logits_all(self, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return self.users(u, s) @ self.items().T + self.bias

        def logits(self, u: torch.Tensor, s: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            return self.users(u, s) @ self.items(items).T + self.bias[items]

    return Net()
