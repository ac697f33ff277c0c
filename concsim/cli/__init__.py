"""The command-line front end."""

from concsim.cli._explore import bench_explore_cmd as bench_explore_cmd
from concsim.cli._explore import explore_cmd as explore_cmd
from concsim.cli._main import cli as cli
from concsim.cli._main import main as main

cli.add_command(explore_cmd)
cli.add_command(bench_explore_cmd)

from concsim.cli._mutants import mutants_cmd  # noqa: E402

cli.add_command(mutants_cmd)
