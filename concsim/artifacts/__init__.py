"""Artifacts: replay files and trace exporters (text, Perfetto, mermaid)."""

from concsim.artifacts._mermaid import to_mermaid as to_mermaid
from concsim.artifacts._perfetto import TraceViewConfig as TraceViewConfig
from concsim.artifacts._perfetto import derive_holds as derive_holds
from concsim.artifacts._perfetto import dumps_perfetto as dumps_perfetto
from concsim.artifacts._perfetto import to_perfetto as to_perfetto
from concsim.artifacts._replayfile import ReplayFile as ReplayFile
from concsim.artifacts._replayfile import atomic_write_bytes as atomic_write_bytes
from concsim.artifacts._replayfile import atomic_write_text as atomic_write_text
from concsim.artifacts._replayfile import default_replay_name as default_replay_name
from concsim.artifacts._replayfile import load_replay as load_replay
from concsim.artifacts._replayfile import replay_from_result as replay_from_result
from concsim.artifacts._replayfile import save_replay as save_replay
from concsim.artifacts._text import to_text as to_text
from concsim.artifacts._views import VIEWS as VIEWS
from concsim.artifacts._views import render_view as render_view
