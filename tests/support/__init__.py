"""Test support code: a scripted OpenAI-compatible HTTP server (``scripted_server``).

Nothing here is shipped in the wheel; it exists for the test suite and for local benchmarks.
"""
