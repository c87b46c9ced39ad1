"""Batch jobs: the synthetic generator, the local engine against the models' own answers,
the Ray engine against the local one (a local Ray cluster of 2 CPUs started in the test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.cli import app
from llmrec.data import columns as C
from llmrec.data import dataset as store
from llmrec.data.splits import full_train
from llmrec.data.synth import SynthConfig, synthesize
from llmrec.errors import LlmrecError
from llmrec.jobs import Engine, Run, read_output, require_ray
from llmrec.jobs.embed import embed_texts
from llmrec.jobs.features import ranker_features
from llmrec.jobs.recommend import batch_recommend
from llmrec.models.base import Recommender
from llmrec.models.mf import ALS

SMALL = SynthConfig(users=600, items=150, interactions=9000, clusters=6, chunk_users=250)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize("small", SMALL, root)
    return root


@pytest.fixture(scope="module")
def als(synth_root: Path) -> Recommender:
    return ALS(epochs=3, embedding_size=16).fit(full_train(store.load(synth_root, "small")))


def test_synth_counts_popularity_and_tastes(synth_root: Path) -> None:
    ds = store.load(synth_root, "small")
    inter = ds.interactions
    # exact totals across chunk boundaries; every user has an event, every id is known
    assert len(inter) == SMALL.interactions
    assert inter[C.USER_ID].nunique() == SMALL.users == len(ds.users)
    assert set(inter[C.ITEM_ID]) <= set(ds.items[C.ITEM_ID]) and len(ds.items) == SMALL.items
    assert ds.summary() == {"interactions": 9000, "users": 600, "items": 150}
    # power law: the top 10% of items take far more than 10% of the events
    counts = inter[C.ITEM_ID].value_counts().to_numpy()
    assert counts[: SMALL.items // 10].sum() > 0.4 * len(inter)
    # tastes: a user's most frequent first genre covers most of their events (in_taste 0.8)
    genre = dict(zip(ds.items[C.ITEM_ID], ds.items[C.GENRES].map(lambda g: g[0]), strict=True))
    g = inter.assign(g=inter[C.ITEM_ID].map(genre))
    active = g.groupby(C.USER_ID).filter(lambda x: len(x) >= 10)
    top_share = active.groupby(C.USER_ID)["g"].agg(lambda x: x.value_counts().iloc[0] / len(x))
    assert top_share.median() > 0.6
    # texts name the genre; timestamps increase within each user
    first = ds.items.iloc[0]
    assert first[C.GENRES][0].lower() in first["description"]
    ts = inter.groupby(C.USER_ID)[C.TIMESTAMP].apply(lambda t: bool(np.all(np.diff(t) >= 0)))
    assert ts.all()


def test_synth_is_seeded_and_validates(tmp_path: Path) -> None:
    a = SynthConfig(users=50, items=20, interactions=400, seed=3)
    synthesize("a", a, tmp_path)
    synthesize("b", a, tmp_path)
    ia, ib = store.load(tmp_path, "a").interactions, store.load(tmp_path, "b").interactions
    pd.testing.assert_frame_equal(ia, ib)
    with pytest.raises(ValueError, match="at least users"):
        SynthConfig(users=50, items=20, interactions=10)


def test_synth_cli_and_its_errors(home: Path) -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(
        app, ["data", "synth", "s", "--users", "40", "--items", "10", "--interactions", "300"]
    )
    assert r.exit_code == 0, r.output
    assert "300 interactions, 40 users, 10 items" in r.output
    assert store.load(home / "datasets", "s").summary()["interactions"] == 300
    bad = _llmrec("data", "synth", "t", "--users", "40", "--items", "10", "--interactions", "5")
    assert bad.returncode == 2
    assert "interactions (5) must be at least users (40)" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (home / "datasets" / "t").exists()


def _llmrec(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a child process: exit codes and stderr as a user sees them."""
    code = "from llmrec.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def _lists(df: pd.DataFrame) -> dict[str, list[str]]:
    df = df.sort_values([C.USER_ID, "rank"])
    return {u: g[C.ITEM_ID].tolist() for u, g in df.groupby(C.USER_ID)}


def test_local_batch_recommend_is_recommend(als: Recommender, tmp_path: Path) -> None:
    """The job's lists are the model's own (exclusion of seen items and tie order included),
    across partition boundaries; a second run replaces the output."""
    res = batch_recommend(als, tmp_path / "recs", Run(batch_size=64), k=7)
    got = read_output(tmp_path / "recs")
    assert res.rows == len(got) == 7 * SMALL.users and res.inputs == SMALL.users
    users = list(als.users_.ids)
    want = als.recommend(users, k=7)
    lists = _lists(got)
    assert [lists[u] for u in users] == want.item_ids
    scores = got.sort_values([C.USER_ID, "rank"]).groupby(C.USER_ID)["score"].apply(list)
    np.testing.assert_allclose(scores[users[5]], want.scores[5], rtol=1e-6)
    assert (got["rank"].groupby(got[C.USER_ID]).min() == 1).all()
    batch_recommend(als, tmp_path / "recs", Run(batch_size=1000), k=3)
    assert len(read_output(tmp_path / "recs")) == 3 * SMALL.users
    assert (tmp_path / "recs" / "_job.json").is_file()


def test_jobs_refuse_to_overwrite_other_folders(als: Recommender, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    with pytest.raises(LlmrecError, match="not a job's output"):
        batch_recommend(als, precious, Run())
    assert (precious / "thesis.txt").read_text() == "keep me"
    with pytest.raises(LlmrecError, match="unknown user ids: nobody"):
        batch_recommend(als, tmp_path / "r", Run(), users=["nobody"])
    assert not (tmp_path / "r").exists()
    assert not list(tmp_path.glob(".r.*"))  # no half-written folder left


def test_missing_ray_says_how_to_install(
    als: Recommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(LlmrecError, match=r"pip install 'llmrec\[ray\]'"):
        require_ray()
    with pytest.raises(LlmrecError, match="--engine local"):
        batch_recommend(als, tmp_path / "recs", Run(engine=Engine.ray))
    assert not (tmp_path / "recs").exists()
    from typer.testing import CliRunner

    als.save(tmp_path / "als")
    r = CliRunner().invoke(
        app,
        ["jobs", "recommend", "--model", str(tmp_path / "als"), "--out", str(tmp_path / "o"),
         "--engine", "ray"],
    )  # fmt: skip
    assert isinstance(r.exception, LlmrecError) and "llmrec[ray]" in str(r.exception)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the module (started once: ~5 s)."""
    ray = pytest.importorskip("ray", reason="the ray extra is installed by `make install`")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_gives_the_local_results(
    ray_cluster: object, als: Recommender, synth_root: Path, tmp_path: Path
) -> None:
    """Top-k of a factor model and embeddings: the same rows on Ray (2 actors, the model
    shared through the object store, several partitions) as in this process."""
    ray_run = Run(engine=Engine.ray, workers=2, batch_size=50)
    local = batch_recommend(als, tmp_path / "local", Run(batch_size=50), k=10)
    on_ray = batch_recommend(als, tmp_path / "ray", ray_run, k=10)
    assert local.rows == on_ray.rows == 10 * SMALL.users
    a = read_output(tmp_path / "local").sort_values([C.USER_ID, "rank"], ignore_index=True)
    b = read_output(tmp_path / "ray").sort_values([C.USER_ID, "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(list((tmp_path / "ray").glob("*.parquet"))) > 1  # really partitioned

    ds = store.load(synth_root, "small")
    embed_texts(ds, "items", tmp_path / "e-local", Run(batch_size=40), encoder="hashing")
    embed_texts(ds, "items", tmp_path / "e-ray", ray_run, encoder="hashing")
    ea = read_output(tmp_path / "e-local").sort_values(C.ITEM_ID, ignore_index=True)
    eb = read_output(tmp_path / "e-ray").sort_values(C.ITEM_ID, ignore_index=True)
    assert len(ea) == SMALL.items and ea[C.ITEM_ID].tolist() == eb[C.ITEM_ID].tolist()
    np.testing.assert_array_equal(np.stack(ea["vector"]), np.stack(eb["vector"]))
    norms = np.linalg.norm(np.stack(ea["vector"]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


@pytest.mark.slow
def test_ray_ranker_features_and_lists(
    ray_cluster: object, served_model_dir: Path, tmp_path: Path
) -> None:
    """The two-stage ranker (retrievers, KG, LightGBM) on Ray: its features and its lists
    equal the local ones, and the lists are the service's model's."""
    ranker = Recommender.load(served_model_dir)
    ray_run = Run(engine=Engine.ray, workers=2, batch_size=8)
    # every user's first two unseen items as labels (the label matrix goes through the store)
    seen = ranker.history_.toarray() > 0
    first = [np.flatnonzero(~row)[:2] for row in seen]
    labels = pd.DataFrame(
        {
            C.USER_ID: np.repeat(ranker.users_.ids, [len(f) for f in first]),
            C.ITEM_ID: ranker.items_.ids[np.concatenate(first)],
        }
    )
    for name, job in (
        ("features", lambda out, run: ranker_features(ranker, out, run, labels)),
        ("recs", lambda out, run: batch_recommend(ranker, out, run, k=5)),
    ):
        job(tmp_path / f"{name}-local", Run(batch_size=8))
        job(tmp_path / f"{name}-ray", ray_run)
        keys = [C.USER_ID, "rank" if name == "recs" else "position"]
        a = read_output(tmp_path / f"{name}-local").sort_values(keys, ignore_index=True)
        b = read_output(tmp_path / f"{name}-ray").sort_values(keys, ignore_index=True)
        pd.testing.assert_frame_equal(a, b)
    feats = read_output(tmp_path / "features-local")
    assert list(feats.columns[:3]) == [C.USER_ID, "position", C.ITEM_ID]
    assert list(feats.columns[3:]) == ["label", *ranker.feature_names_]
    assert feats["label"].isin([0, 1]).all()
    recs = _lists(read_output(tmp_path / "recs-local"))
    users = list(ranker.users_.ids)
    assert [recs[u] for u in users] == ranker.recommend(users, k=5).item_ids


def test_ranker_features_with_labels_are_training_data(
    served_model_dir: Path, tmp_path: Path
) -> None:
    """--labels adds a label column (1 = the pair is in the file) without changing a feature;
    pairs of unknown ids are counted, seen pairs too (never candidates), recall is reported."""
    ranker = Recommender.load(served_model_dir)
    plain = read_output(ranker_features(ranker, tmp_path / "plain", Run(batch_size=16)).out)
    users = list(ranker.users_.ids)
    hits = plain.groupby(C.USER_ID).head(2).iloc[::3][[C.USER_ID, C.ITEM_ID]]  # candidates
    seen_u, seen_i = ranker.history_.nonzero()
    seen = pd.DataFrame({C.USER_ID: [users[seen_u[0]]], C.ITEM_ID: [ranker.items_.ids[seen_i[0]]]})
    unknown = pd.DataFrame({C.USER_ID: ["newcomer"], C.ITEM_ID: [ranker.items_.ids[0]]})
    labels = pd.concat([hits, hits.head(3), seen, unknown], ignore_index=True)  # duplicates too
    csv = tmp_path / "next.csv"
    labels.assign(rating="5").to_csv(csv, index=False)  # extra columns are ignored
    r = _llmrec("jobs", "features", "--model", str(served_model_dir), "--out",
                str(tmp_path / "train"), "--labels", str(csv), "--batch-size", "16")  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = read_output(tmp_path / "train")
    assert list(got.columns[:4]) == [C.USER_ID, "position", C.ITEM_ID, "label"]
    pd.testing.assert_frame_equal(got.drop(columns="label"), plain)
    want = pd.MultiIndex.from_frame(got[[C.USER_ID, C.ITEM_ID]]).isin(
        pd.MultiIndex.from_frame(labels[[C.USER_ID, C.ITEM_ID]])
    )
    assert (got["label"].to_numpy() == want).all() and got["label"].sum() == len(hits)
    job = json.loads((tmp_path / "train" / "_job.json").read_text())["params"]
    assert job["label_rows"] == len(labels)
    assert job["label_pairs"] == len(hits) + 1 and job["label_pairs_seen"] == 1
    assert job["labelled_candidates"] == len(hits) and job["label_recall"] == 1.0
    assert f"{len(hits):,} of the {len(hits):,} unseen among the candidates (100.0%)" in r.stdout

    stranger = tmp_path / "stranger.csv"
    stranger.write_text("user_id,item_id\nnobody,nothing\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,movie\nu1,m1\n")
    for path, message in (
        (stranger, "none of its 1 rows names a user and an item the model knows"),
        (bad, "missing required column"),
    ):
        r = _llmrec("jobs", "features", "--model", str(served_model_dir), "--out",
                    str(tmp_path / "x"), "--labels", str(path))  # fmt: skip
        assert r.returncode == 2 and message in r.stderr and str(path) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_run_options_are_checked() -> None:
    from llmrec.errors import ConfigError

    assert Run(engine="ray").engine is Engine.ray  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        Run(engine="spark")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--ray-address needs --engine ray"):
        Run(address="auto")
    with pytest.raises(ConfigError, match="at least 1"):
        Run(workers=0)


def test_unreachable_ray_cluster_is_a_clear_error(als: Recommender, tmp_path: Path) -> None:
    """In a child process (this one may hold a Ray session): one line, exit code 2."""
    pytest.importorskip("ray", reason="the ray extra is installed by `make install`")
    als.save(tmp_path / "als")
    address = "ray://127.0.0.1:9"  # nothing listens on port 9
    out = str(tmp_path / "recs")
    model = str(tmp_path / "als")
    r = _llmrec("jobs", "recommend", "--model", model, "--out", out, "--engine", "ray",
                "--ray-address", address)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "cannot reach the Ray cluster at 'ray://127.0.0.1:9'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "recs").exists()


def test_top_k_and_embed_check_their_arguments(
    als: Recommender, synth_root: Path, tmp_path: Path
) -> None:
    from llmrec.errors import ConfigError

    with pytest.raises(LlmrecError, match="user index out of range"):
        als.top_k(np.array([0, SMALL.users]))
    ds = store.load(synth_root, "small")
    with pytest.raises(ConfigError, match="'items' or 'users', not 'genres'"):
        embed_texts(ds, "genres", tmp_path / "e", encoder="hashing")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown encoder 'bert'"):
        embed_texts(ds, "items", tmp_path / "e", encoder="bert")
    assert not (tmp_path / "e").exists()


def test_export_carries_titles_and_writes_csv_or_jsonl(
    served_model_dir: Path, tmp_path: Path
) -> None:
    """From a trained folder: titles from its catalogue beside the ids; --format csv/jsonl
    adds one file of every row, the same rows as the Parquet parts."""
    import json

    from typer.testing import CliRunner

    catalogue = pd.read_parquet(served_model_dir / "items.parquet")
    title = dict(zip(catalogue[C.ITEM_ID].astype(str), catalogue[C.TITLE], strict=True))
    for fmt in ("csv", "jsonl"):
        out = tmp_path / fmt
        r = CliRunner().invoke(
            app, ["jobs", "recommend", "--model", str(served_model_dir), "--out", str(out),
                  "-k", "3", "--format", fmt],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        parts = read_output(out)
        assert (parts[C.TITLE] == parts[C.ITEM_ID].map(title)).all()
        path = out / f"recommendations.{fmt}"
        if fmt == "csv":
            rows = pd.read_csv(path, dtype={C.USER_ID: str, C.ITEM_ID: str})
        else:
            rows = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
        assert len(rows) == len(parts) and set(rows.columns) == set(parts.columns)
        assert rows[C.TITLE].tolist() == rows[C.ITEM_ID].map(title).tolist()
    bad = CliRunner().invoke(app, ["jobs", "recommend", "--model", str(served_model_dir),
                                   "--out", str(tmp_path / "x"), "--format", "xml"])  # fmt: skip
    assert bad.exit_code != 0 and "use one of parquet, csv, jsonl" in str(bad.exception)


def test_export_reflects_the_events_stored_since_training(
    served_model_dir: Path, tmp_path: Path
) -> None:
    """With an events store, the export is what the service would serve: a disliked item
    leaves that user's list, a deleted user gets none; without --db and no store, the folder
    alone (as before)."""
    from typer.testing import CliRunner

    from llmrec.service.store import Store

    db = f"sqlite:///{tmp_path / 'events.db'}"
    runner = CliRunner()
    args = ["jobs", "recommend", "--model", str(served_model_dir), "-k", "5"]
    plain = tmp_path / "plain"
    assert runner.invoke(app, [*args, "--out", str(plain), "--db", db]).exit_code == 0
    before = _lists(read_output(plain))
    top = before["u1"][0]
    store = Store(db)
    store.add_events([{"event_id": None, C.USER_ID: "u1", C.ITEM_ID: top, C.EVENT: "dislike",
                       C.VALUE: None, C.TIMESTAMP: 10**9, C.DEVICE: None, C.LOCATION: None,
                       C.SCENARIO: None}])  # fmt: skip
    store.delete_user("u2")
    store.close()
    after = tmp_path / "after"
    r = runner.invoke(app, [*args, "--out", str(after), "--db", db])
    assert r.exit_code == 0, r.output
    lists = _lists(read_output(after))
    assert top not in lists["u1"] and len(lists["u1"]) == 5
    assert "u2" not in lists and "u2" in before
