"""The Hydra configuration tree of `anil train`, shipped inside the package as anil.conf."""
