"""``sasrec``: a causal self-attention model over each user's item sequence (Kang & McAuley
2018), trained with cross-entropy at every position: a full softmax over the catalogue up to
``full_softmax_items`` items, above it a sampled softmax — ``negatives`` items drawn per batch
from Q (half by training frequency, half uniformly: mixed negative sampling, Yang et al. 2020),
logits corrected by -log Q (Jean et al. 2015; Yi et al. 2019) so that it estimates the full
softmax — whose memory does not grow with the catalogue.

Item representation = learned id embedding + a linear projection of the item's text vector
(``text_init``), so an item never seen in training still has a representation: its id part is
zeroed after training, and its text decides. Torch is imported lazily (an optional extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from llmrec.config import get_settings
from llmrec.data.matrix import TrainData, is_catalogue, splice_segments
from llmrec.errors import ConfigError
from llmrec.models.base import Recommender, RecommenderConfig
from llmrec.models.content import embed_catalogue, embed_items
from llmrec.models.memory import check_memory, memory_problem
from llmrec.progress import steps

if TYPE_CHECKING:
    import torch


class SASRecConfig(RecommenderConfig):
    embedding_size: int = Field(64, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    max_len: int = Field(200, ge=2, description="latest items of a user's sequence used")
    dropout: float = Field(0.2, ge=0, lt=1)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(200, ge=1, description="most epochs; tuning stops early on validation")
    text_init: bool = Field(True, description="add a projection of item text vectors")
    encoder: str = Field("minilm", description="text encoder for text_init")
    loss: Literal["auto", "full", "sampled"] = Field(
        "auto", description="softmax over every item, over sampled ones, or by catalogue size"
    )
    negatives: int = Field(2048, ge=1, description="items sampled per batch (sampled softmax)")
    sampling: Literal["frequency", "uniform", "mixed"] = Field(
        "mixed", description="negatives drawn by training frequency, uniformly, or half each"
    )
    full_softmax_items: int = Field(
        20_000, ge=1, description="auto: the largest catalogue trained with the full softmax"
    )


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "sasrec needs torch: pip install 'llmrec[embed]' (CPU build pinned)"
        ) from None
    return torch


def _network(c: SASRecConfig, n_items: int, text_dim: int) -> torch.nn.Module:
    torch = _import_torch()
    nn = torch.nn

    class Block(nn.Module):
        """Pre-norm transformer block; ``allowed`` (B, 1, L, L) True = may attend. No dropout
        on attention weights: sampling that (B, heads, L, L) mask cost a fifth of training."""

        def __init__(self) -> None:
            super().__init__()
            d = c.embedding_size
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.ff = nn.Sequential(
                nn.Linear(d, d), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(d, d)
            )
            self.drop = nn.Dropout(c.dropout)

        def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
            b, n, d = x.shape
            q, k, v = (
                t.view(b, n, c.heads, d // c.heads).transpose(1, 2)
                for t in self.qkv(self.ln1(x)).chunk(3, dim=-1)
            )
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
            return x + self.drop(self.ff(self.ln2(x)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = c.embedding_size
            self.item = nn.Embedding(n_items + 1, d, padding_idx=0)  # 0 = padding
            nn.init.normal_(self.item.weight, std=0.02)
            with torch.no_grad():
                self.item.weight[0].zero_()
            self.text = nn.Linear(text_dim, d, bias=False) if text_dim else None
            self.register_buffer("text_vectors", torch.zeros(n_items + 1, max(text_dim, 1)))
            self.pos = nn.Embedding(c.max_len, d)
            nn.init.normal_(self.pos.weight, std=0.02)
            self.blocks = nn.ModuleList(Block() for _ in range(c.layers))
            self.ln = nn.LayerNorm(d)
            self.drop = nn.Dropout(c.dropout)

        def items(self) -> torch.Tensor:
            """(n_items + 1, d) item representations; row 0 (padding) is zero."""
            e = self.item.weight
            if self.text is not None:
                t = self.text(self.text_vectors)
                e = e + torch.cat([torch.zeros_like(t[:1]), t[1:]])
            return e

        def embed(self, seq: torch.Tensor) -> torch.Tensor:
            """``items()[seq]`` computed for those rows only."""
            e = self.item(seq)
            if self.text is not None:
                e = e + self.text(self.text_vectors[seq]) * (seq > 0).unsqueeze(-1)
            return e

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            """(B, L) item ids, left-padded with 0 -> (B, L, d) hidden states."""
            b, n = seq.shape
            x = self.embed(seq) * (c.embedding_size**0.5) + self.pos.weight[-n:]
            x = self.drop(x) * (seq > 0).unsqueeze(-1)
            # a position sees itself and the real (non-padding) items before it
            causal = torch.ones(n, n, dtype=torch.bool).tril()
            allowed = causal & (seq > 0).unsqueeze(1) | torch.eye(n, dtype=torch.bool)
            allowed = allowed.unsqueeze(1)
            for block in self.blocks:
                x = block(x, allowed) * (seq > 0).unsqueeze(-1)
            return self.ln(x)

    return Net()


class SASRec(Recommender):
    """Next-item transformer; the user's latest ``max_len`` items are its input."""

    name = "sasrec"
    config_class = SASRecConfig
    search_space: dict[str, list[Any]] = {}  # fixed literature defaults; epochs by validation
    iterative = True
    eval_every = 5
    patience = 2  # ml-100k validation peaked by epoch 15 and fell after (lr 2e-3)
    data_parallel = True  # eval.data_parallel may train it on several workers
    shard: tuple[int, int] = (0, 1)  # (rank, world) of the worker training it
    config: SASRecConfig

    # --- data ------------------------------------------------------------------------------
    def _observe(self, data: TrainData) -> None:
        """Per-user item sequences (1-based ids, oldest first) from the event log."""
        log = data.log  # sorted by user, timestamp, item
        counts = np.bincount(log["user_idx"].to_numpy(), minlength=data.n_users)
        self.seq_indptr_ = np.r_[0, np.cumsum(counts)].astype(np.int64)
        self.seq_items_ = log["item_idx"].to_numpy().astype(np.int64) + 1

    def _observe_users(self, part: TrainData, replaced: np.ndarray) -> None:
        log = part.log  # the replaced users' whole logs, sorted by user, timestamp, item
        counts = np.bincount(log["user_idx"].to_numpy(), minlength=part.n_users)
        self.seq_indptr_, (self.seq_items_,) = splice_segments(
            self.seq_indptr_,
            [self.seq_items_],
            replaced,
            np.r_[0, np.cumsum(counts)],
            [log["item_idx"].to_numpy().astype(np.int64) + 1],
        )

    def _sequences(self, user_idx: np.ndarray, length: int) -> np.ndarray:
        """The latest ``length`` items of each user, left-padded with 0 (to no more than the
        longest of them: positions count from the right, so dropping padding changes nothing)."""
        sizes = np.diff(self.seq_indptr_)[user_idx] if len(user_idx) else np.zeros(1, np.int64)
        length = int(min(length, max(int(sizes.max()), 1)))
        out = np.zeros((len(user_idx), length), dtype=np.int64)
        for row, u in enumerate(user_idx):
            s = self.seq_items_[self.seq_indptr_[u] : self.seq_indptr_[u + 1]][-length:]
            if len(s):
                out[row, -len(s) :] = s
        return out

    # --- training --------------------------------------------------------------------------
    def _fit_epochs(self, train: TrainData) -> Iterator[int]:
        torch = _import_torch()
        c = self.config
        torch.manual_seed(c.seed)
        torch.set_num_threads(get_settings().threads)
        rng = np.random.default_rng(c.seed)
        self._observe(train)
        vectors = embed_catalogue(train, c.encoder) if c.text_init else np.zeros((train.n_items, 0))
        self.net_ = _network(c, train.n_items, vectors.shape[1])
        if c.text_init:
            self.net_.text_vectors[1:] = torch.from_numpy(vectors.astype(np.float32))
        self.trained_items_ = np.zeros(train.n_items, dtype=bool)
        self.trained_items_[np.unique(train.log["item_idx"].to_numpy())] = True
        opt = torch.optim.Adam(
            self.net_.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay
        )
        net = self.net_
        if self.shard[1] > 1:  # a worker of eval.data_parallel: gradients averaged each step
            from torch.nn.parallel import DistributedDataParallel

            # the text vectors are a buffer equal on every worker: never re-sent
            net = DistributedDataParallel(self.net_, broadcast_buffers=False)
        users = np.flatnonzero(np.diff(self.seq_indptr_) >= 2)
        self.loss_ = loss_path(c, train.n_items)
        # sampled: validation rises for longer and noisier (ml-100k: best near epoch 45)
        self.patience_ = 4 if self.loss_ == "sampled" else self.patience
        # Q: how often each item is a training target (1-based; row 0 = padding, never drawn)
        freq = np.bincount(self.seq_items_, minlength=train.n_items + 1).astype(np.float64)
        uniform = np.r_[0.0, np.full(train.n_items, freq.sum() / train.n_items)]
        if c.sampling != "frequency":  # tail items rarely drawn by frequency are pushed down
            freq = uniform if c.sampling == "uniform" else (freq + uniform) / 2
        cdf = np.cumsum(freq / freq.sum())
        log_q = torch.from_numpy(np.log(np.maximum(freq / freq.sum(), 1e-30)).astype(np.float32))
        n_batches = -(-len(users) // c.batch_size)
        for epoch in range(1, c.epochs + 1):
            net.train()
            with steps(f"sasrec epoch {epoch}/{c.epochs}", n_batches, 50) as advance:
                for batch in self._batches(users, rng):
                    rows, weight = self._part(batch)
                    loss = self._loss(net, torch.from_numpy(rows), rng, cdf, log_q) * weight
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    advance(1)
            self.net_.eval()
            self.item_cache_ = None
            yield epoch

    def _part(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        """This worker's rows of a batch, and the weight of their summed loss that makes the
        workers' averaged gradient the gradient of the whole batch's mean loss (one worker:
        the batch itself). Every worker draws the same batches (same seed) and steps on each:
        one left without rows steps on a row weighted 0."""
        rank, world = self.shard
        positions = int(((batch[:, :-1] > 0) & (batch[:, 1:] > 0)).sum())
        if world == 1:
            return batch, 1.0 / positions
        rows = np.array_split(batch, world)[rank]
        return (rows, world / positions) if len(rows) else (batch[:1], 0.0)

    def _loss(
        self,
        net: torch.nn.Module,
        seq: torch.Tensor,
        rng: np.random.Generator,
        cdf: np.ndarray,
        log_q: torch.Tensor,
    ) -> torch.Tensor:
        """Summed cross-entropy of every next item of a batch of windows: over the catalogue,
        or over the batch's sampled negatives drawn from ``cdf`` (Q). ``net`` is the network
        or its data-parallel wrapper (the forward pass that synchronises gradients)."""
        torch = _import_torch()
        inputs, targets = seq[:, :-1], seq[:, 1:]
        real = (inputs > 0) & (targets > 0)
        h, target = net(inputs)[real], targets[real]
        if self.loss_ == "full":
            logits = h @ self.net_.items()[1:].T
            return torch.nn.functional.cross_entropy(logits, target - 1, reduction="sum")
        n_items = len(cdf) - 1
        drawn = np.searchsorted(cdf, rng.random(self.config.negatives), side="right")
        negatives = torch.from_numpy(np.minimum(drawn, n_items))
        return sampled_softmax(self.net_, h, target, negatives, log_q, reduction="sum")

    def prepare(self, train: TrainData) -> None:
        if self.config.text_init:  # cached under $LLMREC_HOME: the workers read it
            embed_catalogue(train, self.config.encoder)

    def check_fits(self, n_users: int, n_items: int) -> None:
        c = self.config
        if c.loss == "full":  # auto falls back to the sampled softmax instead
            check_memory(
                "sasrec", f"{n_items:,} items", full_softmax_bytes(c, n_items),
                "the full softmax (batch x positions x items)",
                "use loss=sampled (or auto) for this catalogue",
            )  # fmt: skip

    def size_note(self, n_items: int) -> str:
        c = self.config
        if loss_path(c, n_items) == "full":
            return f"full softmax over {n_items:,} items"
        what = f"sampled softmax ({c.negatives} {c.sampling} negatives, log-Q corrected)"
        if c.loss != "auto":
            return what
        if n_items > c.full_softmax_items:
            return f"{what}: {n_items:,} items > full_softmax_items {c.full_softmax_items:,}"
        need = full_softmax_bytes(c, n_items)
        return f"{what}: the full one needs {need / 2**30:.3g} GiB, {memory_problem(need)}"

    def _batches(self, users: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """One epoch of left-padded windows, batched by length (little padding), batches in
        random order. Each user gives ``max_len + 1`` consecutive items ending at a random
        point at least one full window in: long histories contribute all their parts."""
        n = self.config.max_len + 1
        windows = []
        for u in users:
            s = self.seq_items_[self.seq_indptr_[u] : self.seq_indptr_[u + 1]]
            end = int(rng.integers(min(len(s), n), len(s) + 1))
            windows.append(s[max(0, end - n) : end])
        lengths = np.array([len(w) for w in windows])
        order = np.lexsort((rng.random(len(windows)), lengths))
        size = self.config.batch_size
        for lo in rng.permutation(np.arange(0, len(order), size)):
            rows = order[lo : lo + size]
            out = np.zeros((len(rows), lengths[rows].max()), dtype=np.int64)
            for r, i in enumerate(rows):
                out[r, -lengths[i] :] = windows[i]
            yield out

    # --- scoring ---------------------------------------------------------------------------
    def _score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        torch = _import_torch()
        seq = torch.from_numpy(self._sequences(user_idx, self.config.max_len))
        with torch.no_grad():
            items = self._item_matrix()
            if not is_catalogue(item_idx, len(items)):  # every item: no gathered copy
                items = items[torch.from_numpy(item_idx)]
            out = np.zeros((len(user_idx), len(item_idx)), dtype=np.float32)
            for lo in range(0, len(user_idx), 256):
                h = self.net_(seq[lo : lo + 256])[:, -1]
                out[lo : lo + 256] = (h @ items.T).numpy()
        # a user with no history gets the same (input-free) scores as any other such user
        return out

    def _item_matrix(self) -> torch.Tensor:
        """(n_items, d) output item vectors, cached until the weights or items change."""
        if getattr(self, "item_cache_", None) is None:
            torch = _import_torch()
            items = self.net_.items()[1:]
            if not self.trained_items_.all():  # untrained id vectors are noise: text only
                untrained = torch.from_numpy(~self.trained_items_)
                items = items - self.net_.item.weight[1:] * untrained.unsqueeze(1)
            self.item_cache_ = items.detach()
        return self.item_cache_

    def _add_items(self, items: pd.DataFrame, index: np.ndarray, n_items: int) -> None:
        """New items get a text-only vector (no trained id part); changed ones new text."""
        torch = _import_torch()
        net = self.net_
        n_old = net.item.num_embeddings - 1
        if n_items > n_old:
            grown = _network(self.config, n_items, net.text.in_features if net.text else 0)
            state = net.state_dict()
            for key in ("item.weight", "text_vectors"):  # new rows: zero until set below
                old = state[key]
                state[key] = torch.cat([old, old.new_zeros(n_items - n_old, *old.shape[1:])])
            grown.load_state_dict(state)
            grown.eval()
            self.net_ = grown
            self.trained_items_ = np.r_[self.trained_items_, np.zeros(n_items - n_old, bool)]
        if self.net_.text is not None:
            vecs = embed_items(items, self.config.encoder).astype(np.float32)
            with torch.no_grad():
                self.net_.text_vectors[torch.from_numpy(index + 1)] = torch.from_numpy(vecs)
        self.item_cache_ = None

    # --- state -----------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        weights = {f"net.{k}": v.detach().numpy().copy() for k, v in self.net_.state_dict().items()}
        return {
            **weights,
            "trained_items": self.trained_items_.copy(),
            "seq_indptr": self.seq_indptr_,
            "seq_items": self.seq_items_,
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        torch = _import_torch()
        weights = {
            k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items() if k[:4] == "net."
        }
        text_dim = weights["text.weight"].shape[1] if "text.weight" in weights else 0
        self.net_ = _network(self.config, len(self.items_), text_dim)
        self.net_.load_state_dict(weights)
        self.net_.eval()
        self.item_cache_ = None
        self.trained_items_ = state["trained_items"].astype(bool)
        self.seq_indptr_, self.seq_items_ = state["seq_indptr"], state["seq_items"]


def loss_path(c: SASRecConfig, n_items: int) -> Literal["full", "sampled"]:
    """Which softmax trains a catalogue of ``n_items``: the full one costs positions x items
    logits per batch (64 x 200 x 100k floats = 5 GB before gradients), the sampled one
    positions x negatives; ``auto`` also takes the sampled one when the full one would not
    fit in memory (``models.memory``)."""
    if c.loss != "auto":
        return c.loss
    if n_items > c.full_softmax_items:
        return "sampled"
    return "full" if memory_problem(full_softmax_bytes(c, n_items)) is None else "sampled"


def full_softmax_bytes(c: SASRecConfig, n_items: int) -> int:
    """Peak of a full-softmax batch: the logits, their log-softmax and its gradient, a float32
    per position and item (padding positions are dropped: an upper bound)."""
    return 3 * 4 * c.batch_size * c.max_len * n_items


def sampled_softmax(
    net: torch.nn.Module,
    h: torch.Tensor,
    target: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Cross-entropy of each position's target against ``negatives`` shared by the batch.

    Every logit is corrected by -log Q(item) (the target's too), which makes the sampled
    softmax an unbiased estimate of the full one's gradient as negatives grow; a negative
    equal to the position's own target is masked out (an "accidental hit").
    """
    torch = _import_torch()
    pos = (h * net.embed(target)).sum(-1) - log_q[target]
    neg = h @ net.embed(negatives).T - log_q[negatives]
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1)
    return torch.nn.functional.cross_entropy(logits, torch.zeros_like(target), reduction=reduction)
