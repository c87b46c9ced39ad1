"""Where an item added live lands in the served ml-100k pipeline's lists (``make probe-new-item``).

PUTs one item with only text (a title, a description, genres) into the trained model, then
reports its position for a new visitor, for users 1-59 (top 100), and its rank in the content
retriever for the same users. Writes BENCHMARKS.md's "New item reach" section.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _sections import write_section  # noqa: E402
from llmrec import versions  # noqa: E402
from llmrec.config import get_settings  # noqa: E402
from llmrec.service.live import LiveModel  # noqa: E402
from llmrec.service.store import Store, item_frame  # noqa: E402

BEGIN, END = "<!-- probe_new_item:begin -->", "<!-- probe_new_item:end -->"
ITEM = {
    "item_id": "probe-heist",
    "title": "The Vault Job",
    "text": "A crew of thieves plans one last bank heist; a crime thriller.",
    "genres": ["Crime", "Thriller"],
    "year": None,
    "attributes": {},
}


def main() -> None:
    folder = versions.resolve(get_settings().home / "models" / "ml-100k-ranker")
    tmp = tempfile.mkdtemp(prefix="probe-new-item-")
    live = LiveModel(folder, Store(f"sqlite:///{tmp}/events.db"), cache_size=0, llm="off")
    live.put_item(item_frame([ITEM]))
    n_items = len(live.model.items_)
    users = [str(u) for u in range(1, 60)]
    in_top = [u for u in users if ITEM["item_id"] in {r.item_id for r in live.recommend(u, 100)}]
    visitor = [r.item_id for r in live.recommend("probe-visitor", n_items)]
    m = live.model
    content = m.retrievers_["content"]  # type: ignore[attr-defined]
    scores = content.score(m.users_.index(users))
    j = m.items_.position(ITEM["item_id"])
    content_rank = (scores > scores[:, [j]]).sum(axis=1) + 1
    lines = [
        "## New item reach (issue #7's finding)",
        "",
        f'`make probe-new-item`: one text-only item ("{ITEM["title"]}", "{ITEM["text"]}", '
        f"genres {', '.join(ITEM['genres'])}) PUT into the served ml-100k pipeline, "
        f"{n_items} items after it:",
        "",
        "| where | result |",
        "|---|---|",
        f"| new visitor's list (cold start) | position {visitor.index(ITEM['item_id']) + 1} |",
        f"| top 100 of users 1-59 (two-stage ranker) | in {len(in_top)} of 59 lists |",
        f"| content retriever's rank for users 1-59 | median {int(np.median(content_rank))}, "
        f"best {int(content_rank.min())} |",
    ]
    print("\n".join(lines))
    write_section(ROOT / "BENCHMARKS.md", BEGIN, END, lines)


if __name__ == "__main__":
    main()
