#!/usr/bin/env python3
"""The hooks' cost in instructions: bench/hook.sql (utility statements: the ProcessUtility
hook) and bench/dml.sql (INSERT, UPDATE, DELETE, SELECT: the ExecutorStart hook) in one
backend under callgrind.

Wall-clock figures of a 1.3 ms transaction of catalog writes move by ±10% between runs on
a shared 2-core VM, five times the hook's 2% budget. Callgrind counts the instructions a
process executes, which the machine's other load does not change, so the budget can be
resolved: per transaction of bench/hook.sql, with the extension not loaded, loaded with
mode off (bench_plain) and loaded with mode enforce (bench_guarded), in the same cluster.

Each measured session is one psql connection (the same simple-protocol Query per statement
as pgbench -M simple): a warm-up of the script, a marker `SELECT pg_sleep(0)`, the measured
transactions, a second marker. The postmaster runs under
`valgrind --tool=callgrind --dump-before=pg_sleep`, so the backend's counts are written at
each marker: the second dump holds exactly the measured transactions (plus one marker
statement, the same in every variant). Each session runs in a fresh copy of one template
database, so the dead catalog rows of the previous sessions' CREATE/DROP do not make later
sessions dearer.
Repetitions interleave the variants (a restart with or without the preload per repetition).

Usage (as root; bench/run.sh runs it):
    bench/hook_instructions.py --lib path/to/safe_migrations.so [--reps 3] [--txns 40]
Prints one JSON object: per workload, variant and repetition, instructions per
transaction of the whole backend and of the Rust side of the hooks (`sm_judge_utility`
and `sm_judge_executor`, inclusive).
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {"utility": "hook.sql", "dml": "dml.sql"}
JUDGES = ["sm_judge_utility", "sm_judge_executor"]
VARIANTS = [("not_loaded", "bench_plain"), ("loaded_off", "bench_plain"), ("loaded_enforce", "bench_guarded")]


def log(message):
    print(f"[hook_instructions {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def as_postgres(*argv, **kwargs):
    return subprocess.run(["runuser", "-u", "postgres", "--", "env", "-u", "RUST_BACKTRACE", *argv], **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, pg_bin, lib, work):
        self.pg_bin, self.work = Path(pg_bin), Path(work)
        self.data, self.out, self.port = self.work / "data", self.work / "callgrind", free_port()
        self.postmaster = None
        (self.work / "lib").mkdir(parents=True)
        self.out.mkdir()
        self.lib = self.work / "lib" / "safe_migrations.so"
        shutil.copy(lib, self.lib)
        subprocess.run(["chown", "-R", "postgres:postgres", str(self.work)], check=True)
        os.chmod(self.work, 0o755)
        as_postgres(str(self.pg_bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                    "--no-sync", check=True, stdout=subprocess.DEVNULL)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.work}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nautovacuum = off\n"
                "log_min_messages = warning\ninclude_if_exists = 'preload.conf'\n"
            )

    def start(self, preload, callgrind):
        self.stop()
        preload_conf = self.data / "preload.conf"
        preload_conf.write_text(f"shared_preload_libraries = '{self.lib}'\n" if preload else "")
        shutil.chown(preload_conf, "postgres", "postgres")
        argv = [str(self.pg_bin / "postgres"), "-D", str(self.data)]
        if callgrind:
            argv = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-before=pg_sleep",
                    f"--callgrind-out-file={self.out}/cg.%p", *argv]
        log_file = open(self.work / "postgres.log", "a")
        self.postmaster = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "env", "-u", "RUST_BACKTRACE", *argv],
            stdout=log_file, stderr=subprocess.STDOUT)
        for _ in range(600):
            if subprocess.run([str(self.pg_bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0:
                return
            if self.postmaster.poll() is not None:
                raise SystemExit(f"postgres exited at start: see {self.work}/postgres.log")
            time.sleep(0.2)
        raise SystemExit("postgres did not accept connections within 120 s")

    def stop(self):
        if self.postmaster is not None:
            as_postgres(str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "120", "-m", "fast", "stop",
                        stdout=subprocess.DEVNULL, check=False)
            self.postmaster.wait()
            self.postmaster = None

    def psql(self, user, db, sql=None, file=None):
        argv = [str(self.pg_bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", user, "-d", db]
        argv += ["-f", str(file) if file else "-"]
        result = subprocess.run(argv, input=sql, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"psql as {user} failed: {result.stderr.strip()}")
        return result.stdout


def callgrind_costs(path, functions):
    """Total instructions of a callgrind dump, and the inclusive cost of each function."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)],
                          capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))
    found = {}
    for name in functions:
        match = re.search(rf"^\s*([\d,]+) \([^)]*\)\s+\S*:{re.escape(name)} \[", text, re.M)
        found[name] = int(match.group(1).replace(",", "")) if match else 0
    return total, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    parser.add_argument("--lib", required=True, help="safe_migrations.so to preload")
    parser.add_argument("--hook-sql", default=str(Path(__file__).with_name("hook.sql")),
                        help="the utility workload's script")
    parser.add_argument("--dml-sql", default=str(Path(__file__).with_name("dml.sql")),
                        help="the DML workload's script")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--txns", type=int, default=40, help="measured transactions per session")
    parser.add_argument("--warmup", type=int, default=5, help="transactions before the first marker")
    parser.add_argument("--keep", help="copy each measured dump here (for callgrind_annotate)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the cluster runs as the postgres user via runuser)")
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    for name, path in (("--lib", args.lib), ("--hook-sql", args.hook_sql), ("--dml-sql", args.dml_sql),
                       ("--pg-bin", Path(args.pg_bin) / "postgres")):
        if not Path(path).is_file():
            raise SystemExit(f"{name}: {path} is not a file")
    for name, value in (("--reps", args.reps), ("--txns", args.txns)):
        if value < 1:
            raise SystemExit(f"{name} must be at least 1, not {value}")

    work, done = Path(tempfile.mkdtemp(prefix="safe-migrations-callgrind.")), False
    cluster = Cluster(args.pg_bin, args.lib, work)
    try:
        cluster.start(preload=False, callgrind=False)
        cluster.psql("postgres", "postgres", """
            CREATE ROLE bench_owner NOLOGIN;
            CREATE ROLE bench_plain LOGIN IN ROLE bench_owner;
            CREATE ROLE bench_guarded LOGIN IN ROLE bench_owner;
            ALTER ROLE bench_guarded SET safe_migrations.mode = 'enforce';
            CREATE DATABASE bench_template OWNER bench_owner;""")
        cluster.psql("postgres", "bench_template", """
            CREATE TABLE hook_tiny (id int PRIMARY KEY, v text);
            INSERT INTO hook_tiny SELECT g, 'row ' || g FROM generate_series(1, 10) g;
            ALTER TABLE hook_tiny OWNER TO bench_owner;
            CREATE TABLE hook_dml (id int PRIMARY KEY, v text);
            INSERT INTO hook_dml SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
            ANALYZE hook_dml;
            ALTER TABLE hook_dml OWNER TO bench_owner;""")
        sessions, warmups = {}, {}
        for workload, path in (("utility", args.hook_sql), ("dml", args.dml_sql)):
            script = Path(path).read_text()
            sessions[workload] = work / f"session-{workload}.sql"
            sessions[workload].write_text(
                "SELECT pg_backend_pid();\n" + script * args.warmup + "SELECT pg_sleep(0);\n"
                + script * args.txns + "SELECT pg_sleep(0);\n")
            warmups[workload] = work / f"warmup-{workload}.sql"
            warmups[workload].write_text(script * args.warmup)
            for file in (sessions[workload], warmups[workload]):
                os.chmod(file, 0o644)

        # Every measured session gets a fresh copy of one database, so no session runs on
        # catalogs that the previous sessions' CREATE/DROP left behind. The template is aged
        # by one session first (catalog index pages split once, then reused).
        for workload_session in sessions.values():
            cluster.psql("bench_plain", "bench_template", file=workload_session)
        cluster.psql("postgres", "bench_template", "VACUUM")
        fresh_database = ("DROP DATABASE IF EXISTS bench;\n"
                          "CREATE DATABASE bench TEMPLATE bench_template STRATEGY FILE_COPY OWNER bench_owner;")
        cluster.psql("postgres", "postgres", fresh_database)
        samples = []
        for rep in range(1, args.reps + 1):
            for preload in (False, True):
                cluster.start(preload=preload, callgrind=True)
                # The first session after a start pays for what the cluster caches (the
                # relcache init file, the temp schema's first use): not measured.
                for workload_warmup in warmups.values():
                    cluster.psql("bench_plain", "bench", file=workload_warmup)
                variants = [(workload, variant, role) for workload in sessions
                            for variant, role in VARIANTS if (variant != "not_loaded") == preload]
                if rep % 2 == 0:
                    variants.reverse()
                for workload, variant, role in variants:
                    if variant == "loaded_enforce":
                        refusal = subprocess.run(
                            [str(cluster.pg_bin / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(cluster.port),
                             "-U", role, "-d", "bench", "-c", "CREATE INDEX ON hook_tiny (v)"],
                            capture_output=True, text=True).stderr
                        if "create_index_non_concurrently" not in refusal:
                            raise SystemExit(f"the hook did not guard {role}: {refusal.strip()}")
                    cluster.psql("postgres", "postgres", fresh_database)
                    pid = cluster.psql(role, "bench", file=sessions[workload]).split()[0]
                    dump = cluster.out / f"cg.{pid}.2"
                    for _ in range(100):  # written when the backend reaches the second marker
                        if dump.exists():
                            break
                        time.sleep(0.1)
                    else:
                        raise SystemExit(f"callgrind wrote no {dump} for backend {pid} (see {work}/postgres.log)")
                    if args.keep:
                        Path(args.keep).mkdir(parents=True, exist_ok=True)
                        shutil.copy(dump, Path(args.keep) / f"{workload}.{variant}.{rep}.callgrind")
                    total, inclusive = callgrind_costs(dump, JUDGES)
                    sample = {
                        "workload": workload,
                        "variant": variant,
                        "rep": rep,
                        "instructions_per_txn": total / args.txns,
                        "judge_instructions_per_txn": sum(inclusive.values()) / args.txns,
                    }
                    samples.append(sample)
                    log(f"rep {rep} {workload:8} {variant:15} {sample['instructions_per_txn']:12,.0f} "
                        f"instructions/txn, judges {sample['judge_instructions_per_txn']:9,.0f}")
            cluster.stop()
        version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
        print(json.dumps({"tool": version, "txns": args.txns, "warmup": args.warmup, "samples": samples}, indent=2))
        done = True
    finally:
        cluster.stop()
        if done:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"failed; the cluster's files are kept in {work}")


if __name__ == "__main__":
    main()
