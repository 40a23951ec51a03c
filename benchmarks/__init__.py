"""Kitaru's performance harness (SPEC §10): ``python -m benchmarks [--quick] [--only CASE ...]``.

Each case measures Kitaru and a baseline in the same run, on one shared Ray
session, in a fresh temporary ``KITARU_HOME``; it prints a table and writes
``benchmarks/results/<case>.json`` (all cases: ``summary.json``). See README.md.
"""

# Case name -> module in this package (importing a case module imports Ray).
CASES = {
    "chain": "chain",
    "fixed_cost": "fixed_cost",
    "fresh_fanout": "fresh_fanout",
    "scale": "scale",
    "io_fanout": "io_fanout",
    "cpu_fanout": "cpu_fanout",
    "large_output": "large_output",
    "resume": "resume",
    "import": "import_time",
    "replay": "replay",
    "wait_input": "wait_input",
    "cli_list": "cli_list",
    "server_list": "server_list",
    "server_load": "server_load",
    "ray_backend": "ray_backend",
}
