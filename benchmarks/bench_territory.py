"""Territory assignment at scale: 20,000 accounts to 200 active reps.

The book is generated here (seeded numpy, no external data): 5 regions x 3
segments, a skewed (lognormal) potential per account, and a skewed "last
year" assignment (owners drawn with lognormal weights, new hires holding
nothing, a few departed reps, accounts owned across regions and unowned
accounts, 2% named accounts locked).

Run: ``.venv/bin/python benchmarks/bench_territory.py [--max-moves N] [--seed S]``.
Prints a table and writes ``benchmarks/results/bench_territory.json``.
Timings are wall-clock on a shared 2-core machine and are noisy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import peak_memory_mb, stopwatch, write_result

from revmodel import territory

REGIONS = {"NA-East": 0.25, "NA-West": 0.2, "EMEA": 0.3, "APAC": 0.15, "LATAM": 0.1}
SEGMENTS = {"SMB": (0.6, 40.0), "Mid-Market": (0.3, 150.0), "Enterprise": (0.1, 600.0)}


def make_book(n_accounts: int = 20_000, n_reps: int = 200, n_left: int = 8, seed: int = 7):
    """A synthetic book: accounts, reps (active and departed), potential and locked accounts."""
    rng = np.random.default_rng(seed)
    regions = rng.choice(list(REGIONS), size=n_accounts, p=list(REGIONS.values()))
    seg_names = list(SEGMENTS)
    segments = rng.choice(seg_names, size=n_accounts, p=[v[0] for v in SEGMENTS.values()])
    scale = np.array([SEGMENTS[s][1] for s in segments])
    potential = scale * rng.lognormal(mean=0.0, sigma=0.8, size=n_accounts)
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i:05d}" for i in range(n_accounts)],
            "region": regions,
            "segment": segments,
        }
    )
    # reps per group in proportion to the group's potential, at least 2
    groups = accounts.assign(potential=potential).groupby(["region", "segment"])["potential"].sum()
    raw = n_reps * groups / groups.sum()
    per_group = np.maximum(2, np.floor(raw)).astype(int)
    for key in (raw - np.floor(raw)).sort_values(ascending=False).index:
        if per_group.sum() >= n_reps:
            break
        per_group[key] += 1
    while per_group.sum() > n_reps:
        per_group[per_group.idxmax()] -= 1
    rep_rows = []
    k = 0
    for (region, segment), count in per_group.items():
        for _ in range(int(count)):
            rep_rows.append(
                {"rep_id": f"R{k:03d}", "region": region, "segment": segment, "end_date": None}
            )
            k += 1
    reps = pd.DataFrame(rep_rows)
    # departed reps (end_date before the plan start), spread over the groups
    left_groups = rng.choice(len(per_group), size=n_left, replace=False)
    for j, gi in enumerate(left_groups):
        region, segment = per_group.index[gi]
        reps.loc[len(reps)] = {
            "rep_id": f"L{j:03d}",
            "region": region,
            "segment": segment,
            "end_date": "2026-12-31",
        }
    # last year's owners: lognormal weights; about 5% of active reps are new hires with no accounts
    owner = np.empty(n_accounts, dtype=object)
    for (region, segment), idx in accounts.groupby(["region", "segment"]).indices.items():
        pool = reps[(reps["region"] == region) & (reps["segment"] == segment)]["rep_id"].to_numpy()
        new_hire = rng.random(len(pool)) < 0.05
        new_hire &= ~np.char.startswith(pool.astype(str), "L")
        if new_hire.all():
            new_hire[0] = False
        wts = rng.lognormal(0.0, 0.4, size=len(pool)) * ~new_hire
        owner[idx] = rng.choice(pool, size=len(idx), p=wts / wts.sum())
    other = rng.random(n_accounts) < 0.01
    owner[other] = rng.choice(reps["rep_id"].to_numpy()[:n_reps], size=int(other.sum()))
    owner[rng.random(n_accounts) < 0.01] = None
    accounts["owner_rep_id"] = owner
    pot = pd.Series(potential, index=accounts["account_id"], name="potential")
    active_owner = accounts["owner_rep_id"].isin(reps.loc[reps["end_date"].isna(), "rep_id"])
    candidates = accounts.loc[active_owner & ~other, "account_id"].to_numpy()
    locked = sorted(rng.choice(candidates, size=int(0.02 * n_accounts), replace=False).tolist())
    return accounts, reps, pot, locked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--max-moves", type=int, default=3_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "bench_territory.json")
    )
    a = ap.parse_args(argv)

    with stopwatch() as generating:
        accounts, reps, pot, locked = make_book(a.accounts, a.reps, seed=a.seed)
    with stopwatch() as assigning:
        plan = territory.assign_territories(
            accounts, reps, pot, max_moves=a.max_moves, locked=locked
        )
    gen_seconds, seconds = generating.seconds, assigning.seconds

    s = plan.summary
    a_ = plan.assignment
    methods = pd.Series([g["method"] for g in plan.record["groups"]]).value_counts().to_dict()
    locked_kept = bool(
        (
            a_.set_index("account_id").loc[locked, "new_rep_id"]
            == accounts.set_index("account_id").loc[locked, "owner_rep_id"]
        ).all()
    )
    result = {
        "accounts": int(len(accounts)),
        "active_reps": int(s["active_reps"]),
        "reps_left": int(s["reps_left"]),
        "groups": len(plan.record["groups"]),
        "groups_milp": int(methods.get("milp", 0)),
        "groups_heuristic": int(methods.get("heuristic", 0)),
        "locked_accounts": len(locked),
        "locked_accounts_kept": locked_kept,
        "max_moves": a.max_moves,
        "generate_seconds": round(gen_seconds, 3),
        "seconds": round(seconds, 3),
        "spread_before_max_over_mean": round(s["spread_before_max_over_mean"], 4),
        "spread_before_min_over_mean": round(s["spread_before_min_over_mean"], 4),
        "spread_after_max_over_mean": round(s["spread_after_max_over_mean"], 4),
        "spread_after_min_over_mean": round(s["spread_after_min_over_mean"], 4),
        "accounts_moved": int(s["accounts_moved"]),
        "forced_moves": int(s["forced_moves"]),
        "balance_moves": int(s["balance_moves"]),
        "reps_within_5pct_share": round(s["reps_within_tolerance_share"], 4),
        "every_account_assigned_once": bool(
            a_["account_id"].is_unique and a_["new_rep_id"].notna().all()
        ),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "cpu_count": os.cpu_count(),
        "seed": a.seed,
    }
    width = max(len(k) for k in result)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  -----")
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    print(f"wrote {write_result('bench_territory', result, a.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
