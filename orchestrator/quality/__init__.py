"""Judging generated rows: filters, exact and near dedup, decontamination against benchmark
test sets, answer verification. It does not generate or write anything.
"""
