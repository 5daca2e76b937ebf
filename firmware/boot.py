# DeltaSense node boot: runs before main.py on every reset. Kept minimal: a
# mistake here can lock the console out. Collect once so main.py starts with a
# tidy heap (the firmware's .mpy modules are loaded into it).
import gc

gc.collect()
