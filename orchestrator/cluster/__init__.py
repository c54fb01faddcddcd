"""Working with a remote Ray cluster: job submission, watching jobs, the Jobs API connection
and sealed secrets. It does not run pipelines itself.
"""
