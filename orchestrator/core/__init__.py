"""The pieces every other package builds on: the record type, the stage abstraction, typed
configuration, seeds, prompts, sampling parameters and where built-in data files live.
Nothing here talks to Ray, a teacher or storage.
"""
