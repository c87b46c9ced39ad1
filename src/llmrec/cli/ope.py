"""``llmrec ope``: what other exploration shares would have earned, from the service's logs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec.cli._options import DbOption, open_store
from llmrec.errors import ConfigError
from llmrec.online.feedback import POLICY, share_values


def ope_command(
    shares: Annotated[
        str, typer.Option(help="comma-separated exploration shares to evaluate (0: no exploring)")
    ] = "0,0.05,0.1,0.2",
    horizon: Annotated[
        int, typer.Option(min=1, help="seconds after an impression in which an action counts")
    ] = 3600,
    db: DbOption = None,
) -> None:
    """Off-policy estimates (IPS, SNIPS, 95% bootstrap intervals) of the reward per shown item
    under other exploration shares, from what `llmrec serve --explore` logged."""
    try:
        wanted = [float(x) for x in shares.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--shares: not a list of numbers: {shares!r}") from None
    if not wanted or any(not 0 <= x <= 1 for x in wanted):
        raise ConfigError(f"--shares: give numbers in [0, 1], got {shares!r}")
    store = open_store(db, create=False)
    try:
        imp = store.impressions_since(0)
        values = share_values(imp, store.events_since(0), wanted, horizon)
    finally:
        store.close()
    n = int((imp["policy"] == POLICY).sum())  # share_values reads only these
    table = Table(title=f"{n:,} logged impressions, reward = an action within {horizon} s")
    for col in ("share", "IPS", "95% CI", "SNIPS", "95% CI"):
        table.add_column(col, justify="right")
    for share, est in values.items():
        ips, snips = est["ips"], est["snips"]
        table.add_row(
            f"{share:g}",
            f"{ips.value:.4f}",
            f"[{ips.low:.4f}, {ips.high:.4f}]",
            f"{snips.value:.4f}",
            f"[{snips.low:.4f}, {snips.high:.4f}]",
        )
    Console().print(table)
