"""The pure rule kernels that more than one service runs: street flooding and storms.

Analytics judges the whole city with them (its evaluators in analytics/ruleset.py
wire window arrays into them); a ward's edge gateway (edge/localrules.py) judges
its own ward with the very same functions while its uplink is down.  Pure
functions over NumPy arrays, no I/O; the thresholds they read are
:mod:`deltasense.thresholds`.  The rules only analytics runs (energy, health,
rain, platform) stay in analytics/rules/.
"""
