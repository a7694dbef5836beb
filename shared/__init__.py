"""genlab's shared core: networks, generative families, sampling techniques, the training loop and reports.

A library: no entry points live here. Apps compose these pieces (config -> data -> model -> loop -> evaluate ->
report). Nothing in `shared/` imports from `apps/`.
"""
