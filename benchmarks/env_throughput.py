"""Steps per second of CampusNav-v0, single and vectorised, against MiniGrid.

The measurement lives in the installed package (``campusnav.bench``), so that
``campusnav bench`` works without a source checkout; this script runs it.

    python benchmarks/env_throughput.py              # about 2 s per row
    python benchmarks/env_throughput.py --quick      # a very short run
    python benchmarks/env_throughput.py --json out.json
"""

from collections.abc import Sequence

import tyro

from campusnav.bench import BenchConfig, check_config, run_bench


def main(argv: Sequence[str] | None = None) -> int:
    config = tyro.cli(BenchConfig, args=argv, description=__doc__.split("\n\n")[0],
                      default=BenchConfig(results=True))  # a real run updates docs/results
    try:
        check_config(config)
    except ValueError as error:
        raise SystemExit(f"env_throughput.py: {error}") from None
    return run_bench(config)


if __name__ == "__main__":
    raise SystemExit(main())
