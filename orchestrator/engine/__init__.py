"""Running a pipeline: the driver that shards seeds over Ray, the generation worker actor,
the asynchronous steps inside it, placement, recovery after a worker dies, and dry runs.
It does not define methods (``methods``), judge rows (``quality``) or write files (``output``).
"""
