"""Where an uncached list's time goes on the 100k-item catalogue of ``bench_catalogue.py``
(its model must exist: run that benchmark first): the live model in process, 1 thread, ms
per list scored alone and in passes of 8 (16 users each), then cProfile of 8 lists by
internal time. The per-list costs quoted in docs/service.md come from this script (the
"before" figure from the same script at the revision before the fixes, 55ba4c1).

    OMP_NUM_THREADS=1 LLMREC_THREADS=1 .venv/bin/python benchmarks/profile_catalogue.py
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from llmrec import versions
from llmrec.config import get_settings
from llmrec.service.listing import Ask
from llmrec.service.live import LiveModel
from llmrec.service.store import Store

MODEL = "synth-100k-items-ranker"


def main() -> None:
    folder = versions.resolve(get_settings().home / "models" / MODEL)
    tmp = Path(tempfile.mkdtemp(prefix="profile-catalogue-"))
    t0 = time.perf_counter()
    live = LiveModel(folder, Store(f"sqlite:///{tmp / 'e.db'}"), cache_size=0, llm="off")
    print(f"load {time.perf_counter() - t0:.1f} s")
    users = live.user_ids()[:24]
    with live._lock:  # the service holds it for a pass; nothing else runs here
        live._lists([Ask(users[0], 10, ())])  # warm-up
        for size in (1, 8):
            t0 = time.perf_counter()
            for lo in range(0, 16, size):
                live._lists([Ask(u, 10, ()) for u in users[lo : lo + size]])
            print(f"passes of {size}: {(time.perf_counter() - t0) / 16 * 1000:.0f} ms per list")
        profile = cProfile.Profile()
        profile.enable()
        for u in users[16:24]:
            live._lists([Ask(u, 10, ())])
        profile.disable()
    live.close()
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
