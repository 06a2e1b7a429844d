"""Shared by the bounded-memory retrieve tests: a prelude for their child-process scripts that
reads this process's memory figures (VmRSS, VmHWM) from /proc (Linux)."""

STATUS_KIB = '''
from pathlib import Path

def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)
'''
