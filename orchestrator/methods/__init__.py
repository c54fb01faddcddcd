"""The generation methods from the papers (TinyGSM, Skywork-Math, MuMath-Code, Goat-style
arithmetic), each a subpackage of prompts hooks and parsers, and the catalog naming them.
They do not schedule, dedup or write.
"""
