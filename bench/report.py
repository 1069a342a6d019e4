#!/usr/bin/env python3
"""Medians, ratios and the issue's targets from one bench/run.sh run.

Reads the raw samples (one pgbench run a row) and classify_bench's output, writes
results.json (every sample, every median, every target) and RESULTS.md (the tables).
"""

import argparse
import json
import math
import re
import statistics
from pathlib import Path

TARGETS = ["direct", "pgbouncer", "proxy_unguarded", "proxy_guarded"]
WORKLOADS = ["select_simple", "select_extended", "select_prepared", "tpcb_simple"]
HOOK_VARIANTS = ["not_loaded", "loaded_off", "loaded_enforce"]
CLASSIFY_TARGET = 50_000

# Why a target can be missed, from reading the code, and what would close it. Shown
# only next to a missed target; the measured margin is always computed.
CAUSES = {
    "unguarded_vs_pgbouncer": (
        "Sessions are served by one single-threaded runtime per core (proxy/src/lib.rs, "
        "`Worker`, connections handed round-robin, so a session's wake-ups stay on its thread), "
        "and an unguarded session over plain TCP is copied on its two sockets "
        "(proxy/src/passthrough.rs): one read and one write per chunk, as PgBouncer does; "
        "PgBouncer serves every ready socket of one epoll_wait on one thread. Where the ratio's "
        "per-repetition range spans 1.0, this run cannot tell the two apart.",
        "More repetitions first (the ranges span 1.0); if a gap remains, splice(2) between the two "
        "sockets of a plain-TCP session, so no byte crosses user space.",
    ),
    "unguarded_vs_direct_c1": (
        "At -c 1 nothing overlaps: every round trip goes through a third process (two more "
        "wake-ups, four more syscalls, two more loopback transfers). That hop costs the proxy "
        "and PgBouncer alike (their ratios to direct are close), and a pgbench -S transaction "
        "on a direct connection is only 25-60 µs here, so the hop alone is about as long as "
        "the transaction; on this 2-core VM each wake-up also waits for a core. A blocking "
        "thread-per-direction copy measured no better: the wake-ups, not the syscalls, cost.",
        "Busy-polling instead of sleeping removes the proxy's own wake-ups: --busy-poll-us, "
        "opt-in because it keeps a core busy while a session is; measured in the next target "
        "rows. The default configuration cannot close it: no copy path avoids the wake-up.",
    ),
    "unguarded_busy_poll_vs_direct_c1": (
        "With --busy-poll-us a session that has its thread to itself keeps reading its sockets "
        "for that long after traffic instead of sleeping (proxy/src/passthrough.rs), so "
        "the proxy's own wake-up leaves the round trip; the client's and the server's remain, "
        "and polling takes one of the 2 cores from them.",
        "A longer window (BUSY_POLL_US) or a machine with more cores; nothing else in the hop is left "
        "to remove short of the client connecting directly.",
    ),
    "guarded_vs_unguarded_select": (
        "A guarded session decides each statement text once: -M simple statements are "
        "remembered by their shape, constants as parameters (parse/src/shape.rs, "
        "proxy/src/clean_verdicts.rs), -M extended texts repeat, -M prepared is not parsed. "
        "What remains is the guarded state machine (`Session::serve`, `on_client`, "
        "`Tracker::on_server`): each message decoded and an expectation queued, a few µs per "
        "transaction (CPU table), which matter at -c 1 where latency is the whole cost.",
        "Route the server's answers to statements known to pass with less bookkeeping (no "
        "per-message expectation while nothing hidden is in flight).",
    ),
    "hook_off": (
        "With mode off the hook returns after one comparison (extension/src/hook.c, "
        "`sm_process_utility`); a difference larger than the noise band comes from the machine "
        "(a restart between variants, other work on the 2 cores), not from the hook.",
        "Re-run on a quiet machine with more repetitions (--reps 9 --duration 8).",
    ),
    "hook_enforce": (
        "Transaction control, SET/RESET/SHOW and the other statements the policy cannot object "
        "to pass in hook.c without calling Rust (`sm_is_inert_utility`); the script's five DDL "
        "statements go through `sm_judge_utility` (extension/src/verdict.rs). A 1.3 ms "
        "transaction of catalog writes varies by ±10% between runs here: mode off against not "
        "loaded, which differ by one comparison, spreads as wide (hook table), so wall-clock "
        "figures cannot resolve a 2% budget on this machine. The instruction count, which the "
        "machine's load does not move, can: see its target row and the hook table.",
        "Nothing in the hook, if the instruction row is met; a quiet machine with more "
        "repetitions (--reps 15 --duration 8) to show it in TPS as well.",
    ),
    "hook_enforce_cpu": (
        "As for the TPS row: backend CPU per transaction moves by ±10% between runs of the same "
        "configuration (the per-repetition ratios of mode off to not loaded span about "
        "0.94–1.11), more than the budget; the instruction count resolves it.",
        "As for the TPS row.",
    ),
    "hook_enforce_cpu_paired": (
        "Both roles ran the script at the same time on the loaded server, so the machine's "
        "drift hits both; the two backends still compete for 2 cores with each other and with "
        "the sampler, and /proc charges CPU in 10 ms ticks. The guarded backend's own extra "
        "work is the DDL statements' `sm_judge_utility`, counted in the instruction row.",
        "As for the TPS row.",
    ),
    "hook_enforce_instructions": (
        "Counted, not timed: what the guarded backend executes beyond an unguarded one is "
        "`sm_judge_utility` for the script's five DDL statements (node mapping, the rules, DROP "
        "TABLE's question whether the table is new, the verdict copied to C), which the table "
        "below gives per transaction.",
        "Trim the judge: map only the fields some rule reads, borrow names instead of copying "
        "them into Strings, build the verdict without an intermediate Vec.",
    ),
    "hook_dml_off_instructions": (
        "Counted, not timed: a role whose mode is off costs the executor hook one comparison "
        "per statement.",
        "Look at the plan only after the mode comparison.",
    ),
    "hook_dml_enforce_instructions": (
        "Counted, not timed: with no lock held and small writes, the executor hook reads the "
        "plan's top node and calls no Rust (`sm_judge_executor` stays at 0).",
        "Call Rust only when a lock is held or the estimate is over the limit.",
    ),
    "classification": (
        "perf on classify_bench: about 30% of the samples are libpg_query encoding its parse "
        "tree as protobuf (upb's `encode_message` walks every field of the 270-way Node oneof "
        "for each node), 10% its parser and lexer, and much of the rest malloc/free and prost "
        "decoding that tree again in Rust; the policy's own decision is a few percent. The "
        "figure moves with the host's load: 88,917/s in the quieter 22:33 run of 2026-11-21 with "
        "the same classifier, 45,851–48,010/s in two loaded runs.",
        "Re-run on a quiet machine. In code, only a parse without the protobuf round trip "
        "(libpg_query's C tree walked directly, as the extension walks Postgres' own) would "
        "change the figure by much; the proxy already parses a repeated text once per session.",
    ),
}


def median(values):
    return statistics.median(values) if values else None


def load_samples(path):
    rows = []
    lines = Path(path).read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        row["clients"] = int(row["clients"])
        row["rep"] = int(row["rep"])
        for column in ("tps", "latency_ms", "cpu_us_per_txn", "ctx_switches_per_txn"):
            row[column] = float(row.get(column, "nan"))
        rows.append(row)
    return rows


def summarize(rows):
    groups = {}
    for row in rows:
        key = (row["section"], row["workload"], row["clients"], row["target"])
        groups.setdefault(key, []).append(row)
    summary = {}
    for key, group in groups.items():
        tps = [r["tps"] for r in group if not math.isnan(r["tps"])]
        latency = [r["latency_ms"] for r in group if not math.isnan(r["latency_ms"])]
        cpu = [r["cpu_us_per_txn"] for r in group if not math.isnan(r["cpu_us_per_txn"])]
        ctx = [r["ctx_switches_per_txn"] for r in group if not math.isnan(r["ctx_switches_per_txn"])]
        summary[key] = {
            "tps": median(tps),
            "by_rep": {r["rep"]: r["tps"] for r in group if not math.isnan(r["tps"])},
            "cpu_by_rep": {r["rep"]: r["cpu_us_per_txn"] for r in group if not math.isnan(r["cpu_us_per_txn"])},
            "latency_ms": median(latency),
            "cpu_us_per_txn": median(cpu),
            "ctx_switches_per_txn": median(ctx),
            "tps_min": min(tps) if tps else None,
            "tps_max": max(tps) if tps else None,
            "runs": len(group),
            "failed": len(group) - len(tps),
        }
    return summary


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def parse_classify(path):
    found = {}
    for line in Path(path).read_text().splitlines():
        match = re.search(r"parse \+ decide, (.*?): .* = (\d+) statements/s", line)
        if match:
            found[match.group(1)] = int(match.group(2))
    return found


def check(target_id, label, value, op, threshold, detail=""):
    """One target check: met or missed, and by how much."""
    if value is None:
        status, margin = "no data", None
    elif op == ">=":
        status = "met" if value >= threshold else "missed"
        margin = value - threshold
    else:  # "<=" on an absolute deviation
        status = "met" if value <= threshold else "missed"
        margin = threshold - value
    return {
        "id": target_id,
        "target": label,
        "value": value,
        "op": op,
        "threshold": threshold,
        "status": status,
        "margin": margin,
        "detail": detail,
    }


def paired(summary, a_key, b_key, field="by_rep"):
    """The median over repetitions of a/b (TPS, or `cpu_by_rep`), each pair from the same
    repetition (run one after the other, or at once, so drift of the machine hits both),
    and the pairs' min and max."""
    a, b = summary.get(a_key), summary.get(b_key)
    if not a or not b or field not in a or field not in b:
        return None, None, None
    ratios = [a[field][rep] / b[field][rep] for rep in a[field] if b[field].get(rep)]
    if not ratios:
        return None, None, None
    return median(ratios), min(ratios), max(ratios)


def instruction_medians(instructions, workload="utility"):
    """Per variant of one workload: instructions per transaction by repetition, and the
    judges' share (samples from before the DML workload are the utility workload's)."""
    by_variant = {}
    for sample in (instructions or {}).get("samples", []):
        if sample.get("workload", "utility") != workload:
            continue
        entry = by_variant.setdefault(sample["variant"], {"by_rep": {}, "judge_by_rep": {}})
        entry["by_rep"][sample["rep"]] = sample["instructions_per_txn"]
        entry["judge_by_rep"][sample["rep"]] = sample["judge_instructions_per_txn"]
    for entry in by_variant.values():
        entry["per_txn"] = median(list(entry["by_rep"].values()))
        entry["judge_per_txn"] = median(list(entry["judge_by_rep"].values()))
    return by_variant


def evaluate(summary, classify, busy_poll_us, instructions=None):
    def ratio_check(target_id, label, a_key, b_key, threshold):
        value, low, high = paired(summary, a_key, b_key)
        detail = ""
        if value is not None and low != high:
            detail = f"per-repetition ratios {low:.2f}–{high:.2f}"
            if low < threshold <= high or low <= threshold < high:
                detail += ", the threshold is inside that range"
        return check(target_id, label, value, ">=", threshold, detail)

    def key(workload, clients, target):
        return ("proxy", workload, clients, target)

    checks = []
    for workload in WORKLOADS:
        for clients in (1, 16):
            checks.append(
                ratio_check(
                    "unguarded_vs_pgbouncer",
                    f"unguarded proxy / PgBouncer, {workload} -c {clients}",
                    key(workload, clients, "proxy_unguarded"),
                    key(workload, clients, "pgbouncer"),
                    1.0,
                )
            )
    # The 0.8-of-direct target, for the proxy as it starts by default and with --busy-poll-us.
    for target_id, target, name in (
        ("unguarded_vs_direct_c1", "proxy_unguarded", "unguarded proxy"),
        ("unguarded_busy_poll_vs_direct_c1", "proxy_busy_poll", f"unguarded proxy with --busy-poll-us {busy_poll_us}"),
    ):
        for workload in WORKLOADS:
            if summary.get(key(workload, 1, target)):
                checks.append(
                    ratio_check(
                        target_id,
                        f"{name} / direct, {workload} -c 1",
                        key(workload, 1, target),
                        key(workload, 1, "direct"),
                        0.8,
                    )
                )
    for workload in WORKLOADS[:3]:
        for clients in (1, 16):
            checks.append(
                ratio_check(
                    "guarded_vs_unguarded_select",
                    f"guarded proxy / unguarded proxy, {workload} -c {clients}",
                    key(workload, clients, "proxy_guarded"),
                    key(workload, clients, "proxy_unguarded"),
                    0.9,
                )
            )
    base = summary.get(("hook", "utility", 1, "not_loaded"))
    off = summary.get(("hook", "utility", 1, "loaded_off"))
    enforce = summary.get(("hook", "utility", 1, "loaded_enforce"))
    if base and off and base["tps"]:
        # Noise: half the spread of the repetitions of either variant, relative to its median.
        noise = max(
            (entry["tps_max"] - entry["tps_min"]) / 2 / entry["tps"] for entry in (base, off) if entry["tps"]
        )
        deviation = abs(off["tps"] / base["tps"] - 1)
        checks.append(
            check(
                "hook_off",
                "hook mode off vs not loaded: TPS ratio within 1 ± the noise band",
                deviation,
                "<=",
                noise,
                f"ratio {off['tps'] / base['tps']:.3f}, noise band ±{noise:.1%}",
            )
        )
    if base and enforce:
        checks.append(
            ratio_check(
                "hook_enforce",
                "hook mode enforce / not loaded, utility script",
                ("hook", "utility", 1, "loaded_enforce"),
                ("hook", "utility", 1, "not_loaded"),
                0.98,
            )
        )
    if base and enforce and base.get("cpu_us_per_txn") and enforce.get("cpu_us_per_txn"):
        checks.append(
            check(
                "hook_enforce_cpu",
                "hook mode enforce / not loaded, utility script: backend CPU per transaction "
                f"({enforce['cpu_us_per_txn']:.0f} vs {base['cpu_us_per_txn']:.0f} µs)",
                enforce["cpu_us_per_txn"] / base["cpu_us_per_txn"],
                "<=",
                1.02,
            )
        )
    value, low, high = paired(
        summary,
        ("hook_paired", "utility", 1, "loaded_enforce"),
        ("hook_paired", "utility", 1, "loaded_off"),
        "cpu_by_rep",
    )
    if value is not None:
        checks.append(
            check(
                "hook_enforce_cpu_paired",
                "hook mode enforce / mode off, both roles at the same time, each backend's CPU per "
                f"transaction (per-repetition ratios {low:.2f}–{high:.2f})",
                value,
                "<=",
                1.02,
            )
        )
    counted = instruction_medians(instructions)
    if counted.get("not_loaded") and counted.get("loaded_enforce"):
        value, low, high = paired(
            {"a": counted["loaded_enforce"], "b": counted["not_loaded"]}, "a", "b"
        )
        checks.append(
            check(
                "hook_enforce_instructions",
                "hook mode enforce / not loaded, utility script: the backend's instructions per "
                "transaction, counted by callgrind",
                value,
                "<=",
                1.02,
                f"per-repetition ratios {low:.4f}–{high:.4f}" if low != high else "",
            )
        )
    dml = instruction_medians(instructions, "dml")
    for variant, check_id, budget in (("loaded_off", "hook_dml_off_instructions", 1.01),
                                      ("loaded_enforce", "hook_dml_enforce_instructions", 1.02)):
        if dml.get("not_loaded") and dml.get(variant):
            value, low, high = paired({"a": dml[variant], "b": dml["not_loaded"]}, "a", "b")
            checks.append(
                check(
                    check_id,
                    f"executor hook, mode {variant.split('_')[1]} / not loaded, DML script (bench/dml.sql): "
                    "the backend's instructions per transaction, counted by callgrind",
                    value,
                    "<=",
                    budget,
                    f"per-repetition ratios {low:.4f}–{high:.4f}" if low != high else "",
                )
            )
    per_statement = classify.get("10,000 separate strings (proxy)")
    checks.append(
        check("classification", "classification, statements/s, one thread", per_statement, ">=", CLASSIFY_TARGET)
    )
    return checks


def fmt_value(entry):
    value = entry["value"]
    if value is None:
        return "–"
    if entry["id"] == "classification":
        return f"{value:,.0f}/s"
    if entry["id"] == "hook_off":
        return f"{value:.1%} off"
    return f"{value:.3f}"


def fmt_threshold(entry):
    if entry["id"] == "classification":
        return f"≥ {entry['threshold']:,}/s"
    if entry["id"] == "hook_off":
        return f"≤ {entry['threshold']:.1%} (noise)"
    return f"{entry['op'].replace('>=', '≥')} {entry['threshold']}"


def fmt_status(entry):
    if entry["status"] != "missed":
        return entry["status"]
    if entry["id"] == "classification":
        return f"**missed** by {-entry['margin']:,.0f}/s"
    if entry["id"] == "hook_off":
        return f"**missed** by {-entry['margin']:.1%}"
    short = -entry["margin"] / entry["threshold"]
    return f"**missed** by {-entry['margin']:.3f} ({short:.1%} short)"


def num(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(meta, summary, checks, classify, instructions=None):
    lines = [
        "# Benchmark results",
        "",
        "Produced by `bench/run.sh` (see the top of that script); "
        "`bench/results.json` holds every sample.",
        "",
        f"- Date: {meta['date']}; machine: {meta['cores']} cores ({meta.get('cpu', '?')})",
        f"- PostgreSQL {meta['pg_version']}, PgBouncer {meta['pgbouncer_version']} (session mode), "
        f"commit {meta['commit']}",
        f"- pgbench scale {meta['scale']}; {meta['reps']} repetitions × {meta['duration_s']} s per cell, "
        "interleaved (every repetition runs each workload through direct, PgBouncer, unguarded proxy, "
        "guarded proxy in turn); medians. A target's ratio is the median of the per-repetition ratios "
        "(each pair ran back to back), with their range",
        f"- Load average (1/5/15 min) before: {meta['load_before']}, after: {meta['load_after']}; "
        f"1-min load at the start of each repetition, min and max: {meta.get('load_during', '?')}; "
        f"whole run {meta['wall_s']} s",
        "",
        "## Targets",
        "",
        "| target | measured | required | status |",
        "|---|---|---|---|",
    ]
    for entry in checks:
        detail = f" ({entry['detail']})" if entry["detail"] else ""
        lines.append(
            f"| {entry['target']}{detail} | {fmt_value(entry)} | {fmt_threshold(entry)} | {fmt_status(entry)} |"
        )
    missed = sorted({entry["id"] for entry in checks if entry["status"] == "missed"}, key=list(CAUSES).index)
    if missed:
        lines += ["", "### Missed targets: why, and what would close them", ""]
        for target_id in missed:
            why, fix = CAUSES[target_id]
            lines.append(f"- **{target_id}**: {why} *To close it:* {fix}")

    lines += [
        "",
        "## Proxy overhead: median TPS (ratios)",
        "",
        "| workload | -c | direct | PgBouncer | proxy unguarded | proxy guarded | "
        "unguarded/direct | unguarded/PgBouncer | guarded/direct | guarded/PgBouncer | guarded/unguarded |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        for clients in (1, 16):
            t = {target: (summary.get(("proxy", workload, clients, target)) or {}).get("tps") for target in TARGETS}
            lines.append(
                f"| {workload} | {clients} | "
                + " | ".join(num(t[target], 0) for target in TARGETS)
                + " | "
                + " | ".join(
                    num(ratio(a, b), 3)
                    for a, b in (
                        (t["proxy_unguarded"], t["direct"]),
                        (t["proxy_unguarded"], t["pgbouncer"]),
                        (t["proxy_guarded"], t["direct"]),
                        (t["proxy_guarded"], t["pgbouncer"]),
                        (t["proxy_guarded"], t["proxy_unguarded"]),
                    )
                )
                + " |"
            )
    lines += [
        "",
        "## Proxy overhead: median average latency (ms)",
        "",
        "| workload | -c | direct | PgBouncer | proxy unguarded | proxy guarded |",
        "|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        for clients in (1, 16):
            cells = [
                num((summary.get(("proxy", workload, clients, target)) or {}).get("latency_ms"), 3)
                for target in TARGETS
            ]
            lines.append(f"| {workload} | {clients} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## CPU time and context switches of the middle process per transaction (medians)",
        "",
        "Charged to PgBouncer or the proxy process (all threads) from /proc over each run: "
        "less disturbed by the machine's other load than TPS.",
        "",
        "| workload | -c | PgBouncer µs | unguarded µs | guarded µs | PgBouncer ctx | unguarded ctx | guarded ctx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    middle = ("pgbouncer", "proxy_unguarded", "proxy_guarded")
    for workload in WORKLOADS:
        for clients in (1, 16):
            entries = [summary.get(("proxy", workload, clients, target)) or {} for target in middle]
            lines.append(
                f"| {workload} | {clients} | "
                + " | ".join(num(entry.get("cpu_us_per_txn"), 1) for entry in entries)
                + " | "
                + " | ".join(num(entry.get("ctx_switches_per_txn"), 2) for entry in entries)
                + " |"
            )
    if any(summary.get(("proxy", workload, 1, "proxy_busy_poll")) for workload in WORKLOADS):
        lines += [
            "",
            f"## Busy-polling at -c 1: the unguarded proxy with --busy-poll-us {meta.get('busy_poll_us', '?')}",
            "",
            "Opt-in (the proxy's default is not to poll): a second proxy process, the same unguarded role.",
            "",
            "| workload | direct TPS | unguarded TPS | busy-poll TPS | unguarded/direct | busy-poll/direct | "
            "unguarded proxy CPU µs/txn | busy-poll proxy CPU µs/txn |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for workload in WORKLOADS:
            entries = {
                target: summary.get(("proxy", workload, 1, target)) or {}
                for target in ("direct", "proxy_unguarded", "proxy_busy_poll")
            }
            tps = {target: entry.get("tps") for target, entry in entries.items()}
            lines.append(
                f"| {workload} | {num(tps['direct'], 0)} | {num(tps['proxy_unguarded'], 0)} | "
                f"{num(tps['proxy_busy_poll'], 0)} | {num(ratio(tps['proxy_unguarded'], tps['direct']), 3)} | "
                f"{num(ratio(tps['proxy_busy_poll'], tps['direct']), 3)} | "
                f"{num(entries['proxy_unguarded'].get('cpu_us_per_txn'), 1)} | "
                f"{num(entries['proxy_busy_poll'].get('cpu_us_per_txn'), 1)} |"
            )
    lines += [
        "",
        "## Hook cost: bench/hook.sql at -c 1, direct connection",
        "",
        "| variant | median TPS | min–max TPS | median latency (ms) | TPS / not loaded | backend CPU µs/txn |",
        "|---|---|---|---|---|---|",
    ]
    base = (summary.get(("hook", "utility", 1, "not_loaded")) or {}).get("tps")
    for variant in HOOK_VARIANTS:
        entry = summary.get(("hook", "utility", 1, variant)) or {}
        lines.append(
            f"| {variant} | {num(entry.get('tps'))} | {num(entry.get('tps_min'))}–{num(entry.get('tps_max'))} | "
            f"{num(entry.get('latency_ms'), 3)} | {num(ratio(entry.get('tps'), base), 3)} | "
            f"{num(entry.get('cpu_us_per_txn'), 1)} |"
        )
    paired_rows = [
        (variant, summary.get(("hook_paired", "utility", 1, variant)) or {}) for variant in ("loaded_off", "loaded_enforce")
    ]
    if any(entry for _, entry in paired_rows):
        lines += [
            "",
            "Both roles at the same time (extension loaded; each backend charged its own CPU from /proc):",
            "",
            "| variant | median TPS | backend CPU µs/txn |",
            "|---|---|---|",
        ]
        for variant, entry in paired_rows:
            lines.append(f"| {variant} | {num(entry.get('tps'))} | {num(entry.get('cpu_us_per_txn'), 1)} |")
    counted = instruction_medians(instructions)
    if counted:
        base = (counted.get("not_loaded") or {}).get("per_txn")
        lines += [
            "",
            "In instructions (bench/hook_instructions.py: one backend per variant under "
            f"{instructions.get('tool', 'valgrind')} --tool=callgrind, {instructions['txns']} transactions "
            "counted after a warm-up, each session in a fresh copy of one database; medians of "
            f"{len(next(iter(counted.values()))['by_rep'])} repetitions). `sm_judge_utility` is the "
            "Rust side of the hook (mapping, decision, verdict), inclusive. Sessions of the same "
            "variant differ by up to a few tenths of a percent (in callgrind_annotate: on-access page "
            "pruning and index entry deletion, which depend on what else was running), so mode off "
            "and not loaded are compared by the TPS row above; enforce's extra instructions are the "
            "judge's:",
            "",
            "| variant | instructions / txn | min–max of the sessions | / not loaded | sm_judge_utility / txn | its share |",
            "|---|---|---|---|---|---|",
        ]
        for variant in HOOK_VARIANTS:
            entry = counted.get(variant)
            if not entry:
                continue
            share = entry["judge_per_txn"] / entry["per_txn"] if entry["per_txn"] else None
            lines.append(
                f"| {variant} | {num(entry['per_txn'], 0)} | "
                f"{num(min(entry['by_rep'].values()), 0)}–{num(max(entry['by_rep'].values()), 0)} | "
                f"{num(ratio(entry['per_txn'], base), 4)} | "
                f"{num(entry['judge_per_txn'], 0)} | {'–' if share is None else f'{share:.2%}'} |"
            )
    dml = instruction_medians(instructions, "dml")
    if dml:
        base = (dml.get("not_loaded") or {}).get("per_txn")
        lines += [
            "",
            "The executor hook, in instructions: bench/dml.sql (an INSERT, two UPDATEs and a DELETE "
            "of one row each, a SELECT, in one transaction), measured the same way; the judges' "
            "column is `sm_judge_utility` plus `sm_judge_executor`, which no statement here reaches "
            "(no lock held, no write over max_rows_per_statement):",
            "",
            "| variant | instructions / txn | min–max of the sessions | / not loaded | judges / txn |",
            "|---|---|---|---|---|",
        ]
        for variant in HOOK_VARIANTS:
            entry = dml.get(variant)
            if not entry:
                continue
            lines.append(
                f"| {variant} | {num(entry['per_txn'], 0)} | "
                f"{num(min(entry['by_rep'].values()), 0)}–{num(max(entry['by_rep'].values()), 0)} | "
                f"{num(ratio(entry['per_txn'], base), 4)} | {num(entry['judge_per_txn'], 0)} |"
            )
    lines += ["", "## Classification (classify_bench, release, one thread)", ""]
    for what, rate in classify.items():
        lines.append(f"- parse + decide, {what}: {rate:,} statements/s")
    failed = sum(entry["failed"] for entry in summary.values())
    if failed:
        lines += ["", f"**{failed} pgbench runs failed**; their cells are medians of the others."]
    return "\n".join(lines) + "\n"


GENERATED_MARKER = "<!-- everything below is generated by bench/report.py -->"


def write_results_md(path, generated):
    """Replace the generated part of RESULTS.md, keeping the hand-written part above the
    marker (the method and what the figures mean)."""
    kept = ""
    if path.exists():
        text = path.read_text()
        if GENERATED_MARKER in text:
            kept = text.split(GENERATED_MARKER, 1)[0]
    path.write_text(kept + GENERATED_MARKER + "\n\n" + generated)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", help="the run's samples.tsv")
    parser.add_argument("--classify", help="classify_bench's output")
    parser.add_argument("--hook-instructions", help="bench/hook_instructions.py's output")
    parser.add_argument("--results-json", help="instead: rebuild RESULTS.md from a results.json")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--meta", action="append", default=[], help="key=value")
    args = parser.parse_args()
    if args.results_json:
        previous = json.loads(Path(args.results_json).read_text())
        meta = previous["meta"]
        rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in previous["samples"]]
        classify = previous["classification_statements_per_s"]
        instructions = previous.get("hook_instructions")
    else:
        meta = dict(item.split("=", 1) for item in args.meta)
        rows = load_samples(args.samples)
        classify = parse_classify(args.classify)
        instructions = json.loads(Path(args.hook_instructions).read_text()) if args.hook_instructions else None
    for row in rows:
        for column in ("cpu_us_per_txn", "ctx_switches_per_txn"):
            row.setdefault(column, math.nan)
    summary = summarize(rows)
    checks = evaluate(summary, classify, meta.get("busy_poll_us", "?"), instructions)
    out = Path(args.out_dir)
    results = {
        "meta": meta,
        "targets": checks,
        "classification_statements_per_s": classify,
        "hook_instructions": instructions,
        "medians": [
            {"section": s, "workload": w, "clients": c, "target": t, **entry}
            for (s, w, c, t), entry in sorted(summary.items())
        ],
        "samples": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows],
        "notes": "medians[].by_rep: TPS per repetition; targets[].value: median of per-repetition ratios",
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_results_md(out / "RESULTS.md", markdown(meta, summary, checks, classify, instructions))
    print((out / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
