#!/usr/bin/env python3
"""Compare PostgreSQL regression outputs of guarded runs with the direct run.

Called by tests/regress/run.sh; usable alone on its cached results:

    compare.py --runs DIR --rules-dir policy/src/rules --inherent tests/regress/inherent.txt \
        direct proxy-off proxy-warn

For `direct` the verdict is pg_regress's own (the output against the suite's expected
files). For every other way a test passes when its output, after removing the guard's
own warnings, equals the direct run's output for that test, byte for byte.

Why the removal looks at the direct output: a guard warning is a WARNING line whose
text starts with a rule id (or "safe_migrations", for what the proxy cannot check), then DETAIL:, HINT: and (extension, inside PL/pgSQL)
CONTEXT: fields, and the hint is free text over several lines, some indented SQL,
some plain sentences ("Then make it NOT NULL without a long lock:"). psql prints
the next statement's echo or a result right after it, and those can look the same
(indented SQL, " column " headers). So the text alone cannot say where a warning
ends. GNU diff aligns the run's output with the direct output first; a warning
then ends at the next message header (ERROR:, NOTICE:, ...) or at the first line
diff matched to a line of the direct output. Only lines the direct output does not
have are ever removed. A real difference could be hidden only when it is extra
lines, none of them a message header, right after a guard warning.
"""

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys

# The header of a message psql prints (notice processor or error): the end of the
# previous message's continuation lines. (DETAIL:, HINT:, CONTEXT: are fields of the
# message before them, so they are not here.)
MESSAGE_HEADER = re.compile(r"^(?:ERROR|WARNING|NOTICE|INFO|LOG|DEBUG\d?|FATAL|PANIC|STATEMENT|QUERY):  ")


def rule_ids(rules_dir):
    """One rule per file in policy/src/rules (mod.rs and testing.rs are not rules)."""
    ids = []
    for name in sorted(os.listdir(rules_dir)):
        stem, ext = os.path.splitext(name)
        if ext == ".rs" and stem not in ("mod", "testing"):
            ids.append(stem)
    if not ids:
        sys.exit(f"compare.py: no rule files in {rules_dir}")
    return ids


def read_lines(path):
    """Lines as diff counts them: split at \\n only (str.splitlines also splits at
    \\f, \\x1c, U+2028 ..., which the suite's data holds)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def in_direct(path, direct_path):
    """For each line of `path`: does diff align it with a line of the direct output?"""
    marks = subprocess.run(
        ["diff", "--minimal", "--old-line-format=", "--new-line-format=n\n", "--unchanged-line-format=m\n",
         direct_path, path],
        stdout=subprocess.PIPE, check=False).stdout.decode().split()
    return [mark == "m" for mark in marks]


def strip_guard_warnings(lines, matched, guard_warning):
    """`lines` without the guard's warnings, and how many warnings were removed."""
    out = []
    removed = 0
    j = 0
    while j < len(lines):
        if not guard_warning.match(lines[j]):
            out.append(lines[j])
            j += 1
            continue
        removed += 1
        j += 1
        while j < len(lines) and not matched[j]:
            if MESSAGE_HEADER.match(lines[j]):
                break
            j += 1
    return out, removed


def unified_diff(direct_path, path, label):
    return subprocess.run(["diff", "-u", "--label", direct_path, "--label", label, direct_path, "-"],
                          input=path, stdout=subprocess.PIPE, check=False).stdout


def load_inherent(path):
    """{(way, test): reason} from lines `<way> <test> <reason>`; # starts a comment."""
    entries = {}
    if not os.path.exists(path):
        return entries
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3:
                sys.exit(f"{path}:{number}: expected '<way> <test> <reason>', got: {raw.rstrip()}")
            entries[(parts[0], parts[1])] = parts[2]
    return entries


def pg_regress_verdicts(path):
    """{test: ok?} from pg_regress's own per-test lines (its stdout: it deletes
    regression.out when every test passed)."""
    verdicts = {}
    pattern = re.compile(r"^(?:test\s+)?\s*(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))")
    for line in read_lines(path):
        m = pattern.match(line.strip()) if "..." in line else None
        if m:
            verdicts[m.group(1)] = m.group(2) != "FAILED"
    return verdicts


def first_change(diff_lines):
    """A one-line sample of a diff: the first removed and the first added line."""
    minus = next((l for l in diff_lines if l.startswith("-") and not l.startswith("---")), None)
    plus = next((l for l in diff_lines if l.startswith("+") and not l.startswith("+++")), None)
    parts = [p.rstrip("\n")[:160] for p in (minus, plus) if p is not None]
    return " | ".join(parts)


def rule_warnings(path, rule_warning):
    """The first line of each rule warning in a test's output, in order."""
    return [line.rstrip("\n") for line in read_lines(path) if rule_warning.match(line)]


def compare_judgements(runs, tests, rule_warning, inherent, used_inherent):
    """Do the proxy and the extension warn for the same rules on the same statements,
    with the same words? (way `judgement` in inherent.txt.) Returns (passed, failed,
    excused)."""
    passed = failed = excused = 0
    for test in tests:
        paths = [os.path.join(runs, way, "results", test + ".out") for way in ("extension-warn", "proxy-warn")]
        if not all(os.path.exists(path) for path in paths):
            continue
        extension, proxy = (rule_warnings(path, rule_warning) for path in paths)
        if extension == proxy:
            passed += 1
            continue
        failed += 1
        diff = list(difflib.unified_diff(extension, proxy, n=0, lineterm=""))
        changes = [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        reason = inherent.get(("judgement", test))
        used_inherent.add(("judgement", test))
        excused += bool(reason)
        tag = f" [inherent: {reason}]" if reason else ""
        sample = " | ".join(line[:140] for line in changes[:2])
        print(f"judgement {test}: the extension (-) and the proxy (+) warn differently "
              f"({len(changes)} lines: {sample}){tag}")
    return passed, failed, excused


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", required=True, help="directory holding one directory per way")
    parser.add_argument("--rules-dir", required=True)
    parser.add_argument("--inherent", required=True)
    parser.add_argument("ways", nargs="+")
    args = parser.parse_args()

    ids = rule_ids(args.rules_dir)
    # A rule's warning starts with its id; the proxy's warnings about SQL it cannot
    # check (SM004 in warn mode) start with "safe_migrations" or "safe_migrations proxy".
    guard_warning = re.compile(r"^WARNING:  (?:(?:%s): |safe_migrations(?: proxy)?: )" % "|".join(map(re.escape, ids)))
    inherent = load_inherent(args.inherent)
    used_inherent = set()

    direct_dir = os.path.join(args.runs, "direct", "results")
    direct_tests = sorted(f[:-4] for f in os.listdir(direct_dir) if f.endswith(".out"))

    total_pass = total_fail = 0
    unexcused = 0
    summaries = []
    for way in args.ways:
        passed = failed = excused = 0
        if way == "direct":
            verdicts = pg_regress_verdicts(os.path.join(args.runs, "direct", "pg_regress.log"))
            for test in sorted(verdicts):
                if verdicts[test]:
                    passed += 1
                    continue
                failed += 1
                reason = inherent.get((way, test))
                used_inherent.add((way, test))
                tag = f"inherent: {reason}" if reason else "see direct/regression.diffs"
                excused += bool(reason)
                print(f"{way} {test}: differs from the suite's expected output ({tag})")
            note = ""
        else:
            way_dir = os.path.join(args.runs, way)
            results = os.path.join(way_dir, "results")
            diff_dir = os.path.join(way_dir, "compare")
            shutil.rmtree(diff_dir, ignore_errors=True)
            os.makedirs(diff_dir)
            tests = sorted(set(direct_tests) | {f[:-4] for f in os.listdir(results) if f.endswith(".out")})
            warnings = 0
            for test in tests:
                d_path = os.path.join(direct_dir, test + ".out")
                w_path = os.path.join(results, test + ".out")
                if not os.path.exists(w_path) or not os.path.exists(d_path):
                    diff = None
                    sample = "no output in " + ("this run" if not os.path.exists(w_path) else "the direct run")
                else:
                    direct = read_lines(d_path)
                    lines = read_lines(w_path)
                    matched = in_direct(w_path, d_path)
                    if len(matched) != len(lines):
                        sys.exit(f"compare.py: diff and Python disagree on the lines of {w_path}")
                    stripped, removed = strip_guard_warnings(lines, matched, guard_warning)
                    warnings += removed
                    if stripped == direct:
                        passed += 1
                        continue
                    text = "".join(stripped).encode("utf-8", "surrogateescape")
                    raw = unified_diff(d_path, text, f"{way}/results/{test}.out (guard warnings removed)")
                    with open(os.path.join(diff_dir, test + ".diff"), "wb") as f:
                        f.write(raw)
                    diff = raw.decode("utf-8", "surrogateescape").splitlines(keepends=True)
                    adds = sum(1 for l in diff if l.startswith("+") and not l.startswith("+++"))
                    dels = sum(1 for l in diff if l.startswith("-") and not l.startswith("---"))
                    sample = f"+{adds} -{dels}: {first_change(diff)}"
                failed += 1
                reason = inherent.get((way, test))
                used_inherent.add((way, test))
                excused += bool(reason)
                tag = f" [inherent: {reason}]" if reason else ""
                print(f"{way} {test}: differs ({sample}){tag}")
            note = f", {warnings} guard warnings removed"
            if way.endswith("-warn") and warnings == 0:
                # The suite runs hundreds of DROP TABLEs: no warning means no guard.
                print(f"{way}: not a single guard warning: the role was not guarded")
                unexcused += 1
        if excused:
            note += f", {excused} of the failures listed in inherent.txt"
        summaries.append(f"{way}: {passed} passed, {failed} failed{note}")
        total_pass += passed
        total_fail += failed
        unexcused += failed - excused

    if "proxy-warn" in args.ways and "extension-warn" in args.ways:
        passed, failed, excused = compare_judgements(
            args.runs, direct_tests, re.compile(r"^WARNING:  (?:%s): " % "|".join(map(re.escape, ids))),
            inherent, used_inherent)
        note = f", {excused} of the failures listed in inherent.txt" if excused else ""
        summaries.append(f"judgement: {passed} passed, {failed} failed{note}")
        total_pass += passed
        total_fail += failed
        unexcused += failed - excused
        checked_ways = set(args.ways) | {"judgement"}
    else:
        checked_ways = set(args.ways)

    for (way, test), reason in sorted(inherent.items()):
        if way in checked_ways and (way, test) not in used_inherent:
            print(f"note: inherent.txt lists {way} {test}, which no longer differs; remove it")
    for line in summaries:
        print(line)
    excused_total = sum(1 for key in used_inherent if key in inherent)
    if excused_total:
        print(f"{excused_total} differences are listed in inherent.txt with their reasons")
    print(f"{total_pass} passed, {unexcused} failed")
    return 1 if unexcused else 0


if __name__ == "__main__":
    sys.exit(main())
