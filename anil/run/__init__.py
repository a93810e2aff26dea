"""Running: building a run from its config, the training loop, checkpoints, metrics files,
data-parallel processes and meta-test evaluation. Hydra-free: the command line passes a typed
config and a run directory in."""
