"""``python -m bench`` (``make bench``): every benchmark, one after another.

The PostgreSQL benchmark runs when ``FW_TEST_DATABASE_URL`` points at a server. The soak
(``python -m bench.soak``: workers SIGKILLed under load, a minute or more per store) is not
part of it; run it on its own.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> None:
    benches = [
        "bench.codegen_bench",
        "bench.runtime_bench",
        "bench.timer_bench",
        "bench.serialization_bench",
    ]
    if os.environ.get("FW_TEST_DATABASE_URL"):
        benches.append("bench.postgres_bench")
    else:
        print("bench.postgres_bench skipped: set FW_TEST_DATABASE_URL to a PostgreSQL server")
    for bench in benches:
        print(f"\n== {bench}", flush=True)
        subprocess.run([sys.executable, "-m", bench], check=True)


if __name__ == "__main__":
    main()
