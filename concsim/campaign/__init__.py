"""Stress campaigns: many seeds of one scenario, sharded over processes or a Dask cluster.

``concsim stress`` is the front end; this package is the engine behind it (named
``campaign`` so that no plain top-level ``stress`` module lands on users' import path).
"""

from concsim.campaign._runner import CampaignResult as CampaignResult
from concsim.campaign._runner import CampaignSpec as CampaignSpec
from concsim.campaign._runner import Progress as Progress
from concsim.campaign._runner import run_campaign as run_campaign
from concsim.campaign._spec import SeedRange as SeedRange
from concsim.campaign._spec import load_campaign as load_campaign
from concsim.campaign._spec import parse_budget as parse_budget
from concsim.campaign._spec import parse_seeds as parse_seeds
from concsim.campaign._tally import hist_summary as hist_summary
from concsim.campaign._worker import Job as Job
from concsim.campaign._worker import run_batch as run_batch
from concsim.campaign._worker import seed_digest as seed_digest
