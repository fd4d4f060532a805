"""Start-up time: `provenant serve` launched until `/readyz` answers 200.

SQLite in a fresh temporary directory, the shipped policies (./policies), a new audit key: what
`make run` does on a first start. The migration runs before the clock starts. Each run polls
/readyz every 10 ms; the script prints each run and the median, minimum and maximum
(target: under 2 s on a quiet machine), with the load average, since other work on the machine
shows up directly in these figures.

    .venv/bin/python bench/startup.py [--repeat 5] [--policy-dir policies]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_start(policy_dir: Path, timeout: float = 60) -> float:
    with tempfile.TemporaryDirectory(prefix="provenant-startup-") as tmp:
        env = {
            **os.environ,
            "PROVENANT_DATABASE_URL": f"sqlite:///{tmp}/provenant.db",
            "PROVENANT_POLICY_DIR": str(policy_dir),
            "PROVENANT_AUDIT_KEY_FILE": f"{tmp}/audit-key.pem",
            "PROVENANT_LOG_LEVEL": "warning",
        }
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}/readyz"
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env={**env, "PYTHONPATH": str(REPO)},
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(timeout=1) as client:
                while time.perf_counter() - start < timeout:
                    if process.poll() is not None:
                        raise RuntimeError("server exited during start-up")
                    try:
                        if client.get(url).status_code == 200:
                            return time.perf_counter() - start
                    except httpx.TransportError:
                        pass
                    time.sleep(0.01)
            raise RuntimeError(f"not ready after {timeout}s")
        finally:
            process.terminate()
            process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--policy-dir", type=Path, default=REPO / "policies")
    args = parser.parse_args()
    times = []
    for i in range(args.repeat):
        load = os.getloadavg()[0]
        elapsed = one_start(args.policy_dir.resolve())
        times.append(elapsed)
        print(f"run {i + 1}: ready in {elapsed:.2f} s (load average {load:.1f})")
    print(
        f"start-up to /readyz 200: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs "
        f"({os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
