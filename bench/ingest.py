"""Ingest throughput against the real server, relative to bare sigstore-python verification.

Signs N distinct bundles with the project's private Sigstore stack, then in one run:
  1. bare: ``Verifier(trusted_root=...).verify_dsse`` on each bundle (parse + verify), serially;
  2. api: POST each bundle to a real ``provenant serve`` process over HTTP, serially, one client.
Prints bundles/s and the per-bundle cost ratio api/bare (target: at most 1.5).

    .venv/bin/python bench/ingest.py [-n 300] [--database-url URL] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sigstore.models import Bundle  # noqa: E402
from sigstore.verify import Verifier  # noqa: E402
from sigstore.verify.policy import UnsafeNoOp  # noqa: E402

from app.auth.service import create_token  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from tests.attestations.conftest import statement  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.sigstore_stack import SigstoreTestStack, github_actions_extensions  # noqa: E402


def bare(verifier: Verifier, bundles: list[str]) -> tuple[float, float]:
    """Wall and CPU time of parse + verify_dsse, the library alone."""
    start, cpu0 = time.perf_counter(), time.process_time()
    for raw in bundles:
        verifier.verify_dsse(Bundle.from_json(raw), UnsafeNoOp())
    return time.perf_counter() - start, time.process_time() - cpu0


def server_cpu_seconds(pid: int) -> float:
    """utime + stime of the server process (Linux /proc), so client-side cost is left out."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api(server: ServerProcess, token: str, bundles: list[str]) -> tuple[float, float]:
    """Wall time at the client, and CPU time spent by the server process."""
    headers = {"Authorization": f"Bearer {token}"}
    assert server.process is not None
    with server.client() as client:
        client.get("/healthz")
        cpu0 = server_cpu_seconds(server.process.pid)
        start = time.perf_counter()
        for raw in bundles:
            response = client.post("/v1/attestations", content=raw.encode(), headers=headers)
            if response.status_code != 201:
                raise SystemExit(f"upload failed: {response.status_code} {response.text}")
        wall = time.perf_counter() - start
        return wall, server_cpu_seconds(server.process.pid) - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="bundles per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements (fresh bundles each)")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()

    stack = SigstoreTestStack.get()
    verifier = Verifier(trusted_root=stack.trusted_root)
    ext = github_actions_extensions()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policies = work / "policies"
        (policies / "trust").mkdir(parents=True)
        stack.write_trusted_root(policies / "trust" / "test-stack.json")
        url = args.database_url or f"sqlite:///{work}/bench.db"
        upgrade(url)
        db = Database(url)
        with db.session() as s:
            token = create_token(s, f"bench-{time.time_ns()}", ["upload"])
        db.dispose()
        wall_ratios, cpu_ratios, rates, bare_rates = [], [], [], []
        with ServerProcess(url, policies, work) as server:
            for r in range(args.repeat):
                base = (r + 1) * 1_000_000 + time.time_ns() % 1_000_000 * 1000
                bundles = [
                    stack.sign_dsse(statement(f"artifact-{base + i}.tar.gz"), extensions=ext)
                    for i in range(args.n)
                ]
                bare_wall, bare_cpu = bare(verifier, bundles)
                api_wall, api_cpu = api(server, token, bundles)
                wall_ratios.append(api_wall / bare_wall)
                cpu_ratios.append(api_cpu / bare_cpu)
                rates.append(args.n / api_wall)
                bare_rates.append(args.n / bare_wall)
                print(
                    f"run {r + 1}: bare {bare_wall / args.n * 1000:.2f} ms/bundle "
                    f"(cpu {bare_cpu / args.n * 1000:.2f}) | api {api_wall / args.n * 1000:.2f} "
                    f"ms/bundle at the client, server cpu {api_cpu / args.n * 1000:.2f} | "
                    f"ratio wall {api_wall / bare_wall:.2f}, server cpu {api_cpu / bare_cpu:.2f}"
                )
    backend = url.split(":", 1)[0]
    print(
        f"\ningest ({backend}, n={args.n}, {args.repeat} runs, serial uploads): "
        f"api {statistics.median(rates):.1f} bundles/s vs bare verify_dsse "
        f"{statistics.median(bare_rates):.1f} bundles/s (medians)\n"
        f"  per-bundle cost ratio, client wall time: median {statistics.median(wall_ratios):.2f} "
        f"(min {min(wall_ratios):.2f}, max {max(wall_ratios):.2f})\n"
        f"  per-bundle cost ratio, server CPU time:  median {statistics.median(cpu_ratios):.2f} "
        f"(min {min(cpu_ratios):.2f}, max {max(cpu_ratios):.2f}); target <= 1.5"
    )


if __name__ == "__main__":
    main()
