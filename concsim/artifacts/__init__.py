"""Artifacts: replay files (and, later, trace exporters)."""

from concsim.artifacts._replayfile import ReplayFile as ReplayFile
from concsim.artifacts._replayfile import atomic_write_text as atomic_write_text
from concsim.artifacts._replayfile import default_replay_name as default_replay_name
from concsim.artifacts._replayfile import load_replay as load_replay
from concsim.artifacts._replayfile import replay_from_result as replay_from_result
from concsim.artifacts._replayfile import save_replay as save_replay
