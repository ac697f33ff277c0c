"""The command-line front end."""

from concsim.cli._main import cli as cli
from concsim.cli._main import main as main
