"""The learning engine: the network, ANIL's batched inner loop and meta-gradient, MAML, the loss
functions and the operation counters.

It imports torch and the neutral task types (anil.tasks) only: never the data layer, the run
layer, the analysis layer or the command line.
"""
