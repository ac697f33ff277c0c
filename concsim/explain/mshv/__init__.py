"""The mshv model's explainers: stale SLAT access (S1, S2, S7), mreg_mutex (S3), region
lifetime (S5), gfn overlap, vCPU progress (L3).  Each module has
``explain(ctx)``; the invariant catalogue (``concsim.checks._catalogue``) names the module
for each id."""
