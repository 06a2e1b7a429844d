"""The steps of one case over its workspace and the TFTT database (the I/O layer under tasks)."""
