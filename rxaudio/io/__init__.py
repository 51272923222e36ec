"""I/O edges: byte formats live here and nowhere else."""
