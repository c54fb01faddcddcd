"""The output dataset: storage backends, atomic commits and the ledger, stats and mixing.
It does not decide what is accepted.
"""
