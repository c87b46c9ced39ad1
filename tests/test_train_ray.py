"""Data-parallel training on Ray Train (``eval.data_parallel``, ``llmrec train --engine ray``):
the batch arithmetic that makes N workers train what one does, which parts go to Ray, and
local 1- and 2-worker clusters training SASRec on shop data (every optional column)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrec.data.splits import Split, full_train, holdout
from llmrec.errors import ConfigError
from llmrec.eval.tuning import tune, valid_score
from llmrec.jobs.engine import Engine, Run
from llmrec.jobs.train import data_parallel_parts
from llmrec.models.base import Recommender
from llmrec.models.sasrec import SASRec
from llmrec.testing.fixtures import shop_dataset

SASREC = {"seed": 3, "encoder": "hashing", "epochs": 10, "embedding_size": 16, "max_len": 12}


@pytest.fixture(scope="module")
def shop_split() -> Split:
    return holdout(full_train(shop_dataset()), seed=0)


def test_the_workers_shares_of_a_batch_give_the_whole_batchs_mean_loss(
    shop_split: Split,
) -> None:
    """Each worker's rows, weighted by ``_part``, sum to the batch's mean loss (DDP averages
    the workers' gradients): 2 and 3 workers train on the gradient of 1. A worker left
    without rows steps on a row weighted 0."""
    torch = pytest.importorskip("torch")
    model = SASRec(**{**SASREC, "epochs": 1, "dropout": 0.0})
    model.fit(shop_split.valid_train)
    model.loss_ = "full"
    batch = next(model._batches(np.arange(10), np.random.default_rng(0)))
    rng = np.random.default_rng(0)
    whole = model._loss(model.net_, torch.from_numpy(batch), rng, np.zeros(1), torch.zeros(1))
    positions = int(((batch[:, :-1] > 0) & (batch[:, 1:] > 0)).sum())
    for world in (2, 3):
        total = 0.0
        for rank in range(world):
            model.shard = (rank, world)
            rows, weight = model._part(batch)
            part = model._loss(model.net_, torch.from_numpy(rows), rng, np.zeros(1), None)
            total += float(part.detach()) * weight / world  # what DDP's average makes of it
        assert total == pytest.approx(float(whole.detach()) / positions, rel=1e-5)
    model.shard = (1, 2)
    rows, weight = model._part(batch[:1])
    assert len(rows) == 1 and weight == 0.0


def test_which_parts_train_data_parallel() -> None:
    assert data_parallel_parts("sasrec", {}) == ["sasrec"]
    assert data_parallel_parts("ranker", {}) == ["sasrec"]  # the default pipeline's
    two = {"retrievers": {"sasrec": {}, "sasrec#plain": {"text_init": False}, "ease": {}}}
    assert data_parallel_parts("ranker", two) == ["sasrec", "sasrec#plain"]
    assert data_parallel_parts("llm-rerank", {}) == ["sasrec"]  # through its base ranker
    assert data_parallel_parts("ease", {}) == []
    assert data_parallel_parts("hybrid", {"cf": "ease"}) == []


def test_train_engine_options_are_checked_before_any_work(home: Path) -> None:
    """A model with nothing data-parallel trains here (no cluster started); a Ray address
    without the Ray engine is refused up front."""
    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.data import dataset as store

    store.save(shop_dataset(), home / "datasets")
    runner = CliRunner()
    res = runner.invoke(
        app, ["train", "--dataset", "shop", "--model", "pop", "--engine", "ray", "--no-tune"]
    )
    assert res.exit_code == 0, res.output
    assert "no part trains data-parallel" in res.output
    info = json.loads(next((home / "models").glob("shop-pop/versions/*/training.json")).read_text())
    assert info["engine"] == {"name": "local"}
    res = runner.invoke(app, ["train", "--dataset", "shop", "--ray-address", "auto"])
    assert isinstance(res.exception, ConfigError) and "--engine ray" in str(res.exception)


def _scores(model: Recommender) -> np.ndarray:
    return model.score(np.arange(len(model.users_)))


@pytest.mark.slow
def test_sasrec_on_ray_train_is_the_local_model_and_serves_like_it(
    shop_split: Split, home: Path, tmp_path: Path
) -> None:
    """One Ray Train worker trains exactly the local model (same batches, same steps); two
    train it data-parallel (DDP) to the same validation level; the kept epoch is the best
    check's, and a model trained there saves, loads and scores as itself."""
    pytest.importorskip("ray.train.torch", reason="the ray extra is installed by `make install`")
    from llmrec.jobs.train import train_on_ray

    local = tune(SASRec, shop_split, SASREC, search=False)
    with train_on_ray(Run(engine=Engine.ray, workers=1)):
        one = tune(SASRec, shop_split, SASREC, search=False)
    assert one.params["epochs"] == local.params["epochs"]
    assert one.valid_score == pytest.approx(local.valid_score, abs=1e-9)
    np.testing.assert_allclose(_scores(one.model), _scores(local.model), rtol=1e-4, atol=1e-5)

    with train_on_ray(Run(engine=Engine.ray, workers=2)):
        two = tune(SASRec, shop_split, SASREC, search=False)
    assert two.params["epochs"] in (5, 10)  # a checked epoch
    assert valid_score(two.model, shop_split) == pytest.approx(two.valid_score, abs=1e-9)
    assert two.valid_score > 0.5 * local.valid_score  # learnt, not noise
    two.model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(_scores(again), _scores(two.model))


@pytest.mark.slow
def test_llmrec_train_engine_ray_writes_a_version_that_serves(home: Path) -> None:
    """``llmrec train --engine ray`` end to end: the per-check lines come back from the
    workers, training.json says where it trained, and the folder recommends."""
    pytest.importorskip("ray.train.torch", reason="the ray extra is installed by `make install`")
    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.data import dataset as store

    store.save(shop_dataset(), home / "datasets")
    params = [f"--param={k}={v}" for k, v in SASREC.items() if k != "seed"]
    res = CliRunner().invoke(
        app,
        ["train", "--dataset", "shop", "--model", "sasrec", "--engine", "ray", "--workers", "2",
         "--no-tune", *params],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "sasrec on Ray Train (2 workers)" in res.output
    assert "sasrec epoch 5: valid ndcg@10" in res.output
    folder = home / "models" / "shop-sasrec"
    info = json.loads(next(folder.glob("versions/*/training.json")).read_text())
    assert info["engine"] == {"name": "ray", "workers": 2, "data_parallel": ["sasrec"]}
    model = Recommender.load(folder)
    recs = model.recommend(["000", "NaN"], k=5)  # string ids that look like numbers
    assert [len(items) for items in recs.item_ids] == [5, 5]


@pytest.mark.slow
def test_llmrec_eval_engine_ray_with_one_worker_is_the_local_evaluation(
    home: Path, tmp_path: Path
) -> None:
    """``llmrec eval --engine ray`` trains SASRec on Ray Train under the same protocol: with
    one worker, the test metrics of the local evaluation exactly; a model with nothing
    data-parallel starts no cluster."""
    pytest.importorskip("ray.train.torch", reason="the ray extra is installed by `make install`")
    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.data import dataset as store

    store.save(shop_dataset(), home / "datasets")
    params = [f"--param={k}={v}" for k, v in SASREC.items() if k != "seed"]
    base = ["eval", "--dataset", "shop", "--model", "sasrec", "--no-tune", "--seed", "3",
            "--reports", str(tmp_path), *params]  # fmt: skip
    runner = CliRunner()
    local = runner.invoke(app, [*base, "--json", str(tmp_path / "local.json")])
    assert local.exit_code == 0, local.output
    ray = runner.invoke(
        app, [*base, "--engine", "ray", "--workers", "1", "--json", str(tmp_path / "ray.json")]
    )
    assert ray.exit_code == 0, ray.output
    assert "sasrec on Ray Train (1 worker)" in ray.output
    a = json.loads((tmp_path / "local.json").read_text())
    b = json.loads((tmp_path / "ray.json").read_text())
    assert a["metrics"] == b["metrics"] and a["params"]["epochs"] == b["params"]["epochs"]
    pop = runner.invoke(app, ["eval", "--dataset", "shop", "--model", "pop", "--engine", "ray",
                              "--reports", str(tmp_path)])  # fmt: skip
    assert pop.exit_code == 0 and "no part trains data-parallel" in pop.output


def test_a_ray_address_for_local_training_is_refused() -> None:
    with pytest.raises(ConfigError, match="--engine ray"):
        Run(Engine.local, "auto", 2)
