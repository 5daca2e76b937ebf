"""Alert rules: pure functions over window arrays, no I/O.

The street-flood and storm kernels, and the helpers every rule shares (`base`), live
in :mod:`deltasense.rulekernels`: the edge gateway runs them too.
"""
