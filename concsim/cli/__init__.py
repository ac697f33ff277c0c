"""The command-line front end: the ``concsim`` group and its subcommands."""

from concsim.cli._compare import compare_cmd
from concsim.cli._conformance import conformance_cmd
from concsim.cli._db import db_cmd
from concsim.cli._explain import explain_cmd
from concsim.cli._explore import bench_explore_cmd, explore_cmd
from concsim.cli._main import cli as cli
from concsim.cli._main import main as main
from concsim.cli._mutants import mutants_cmd
from concsim.cli._shrink import shrink_cmd
from concsim.cli._stress import stress_cmd

for _cmd in (
    stress_cmd,
    explain_cmd,
    compare_cmd,
    shrink_cmd,
    explore_cmd,
    bench_explore_cmd,
    mutants_cmd,
    conformance_cmd,
    db_cmd,
):
    cli.add_command(_cmd)
