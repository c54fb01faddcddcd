"""Numbers about a run and how they are shown: counters, the metrics hub actor, progress
files, the job report and the terminal dashboard. Stages only count; only the dashboard renders.
"""
