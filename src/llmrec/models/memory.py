"""Refusing what would not fit in memory before anything is allocated: a fit's dense state is
checked against the budget (``LLMREC_MEMORY_GB``) and against what the machine has free now,
since a budget larger than the machine is no promise (a fit that touches more pages than
there are is killed, or faults inside BLAS, halfway)."""

from __future__ import annotations

from llmrec.config import available_memory, get_settings
from llmrec.errors import ConfigError

# beside the estimated arrays: allocator slack, BLAS buffers, the sparse inputs
HEADROOM = 1.15


def memory_problem(need: int) -> str | None:
    """Why ``need`` bytes cannot be taken now (over the budget, or over what is free), or
    None when they can."""
    budget = get_settings().memory_gb * 2**30
    if need > budget:
        return f"over the memory budget of {budget / 2**30:.3g} GiB (LLMREC_MEMORY_GB)"
    free = available_memory()
    if free is not None and need * HEADROOM > free:
        return f"and this machine has {free / 2**30:.3g} GiB free now"
    return None


def check_memory(model: str, subject: str, need: int, purpose: str, advice: str) -> None:
    """Raise ``ConfigError`` naming the model, the size, the limit and what to do instead
    when ``need`` bytes (``subject`` need them for ``purpose``) do not fit."""
    problem = memory_problem(need)
    if problem is None:
        return
    ending = "raise the budget if the machine has it" if "budget" in problem else "free memory"
    raise ConfigError(
        f"{model}: {subject} need {need / 2**30:.3g} GiB for {purpose}, {problem}; "
        f"{advice}, or {ending}"
    )
