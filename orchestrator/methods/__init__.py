"""The generation methods from the papers (TinyGSM, Skywork-Math, MuMath-Code, Goat-style
arithmetic), each a subpackage of prompt hooks and parsers whose ``pipeline.METHOD`` is a
``Method`` (``method``), and the catalog finding the method a pipeline names (built-ins,
installed entry points, ``module:attr``). They do not schedule, dedup or write.
"""
