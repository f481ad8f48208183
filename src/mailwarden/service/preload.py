"""What the scanning processes' forkserver loads before it forks them.

A scanning process is forked from the forkserver, so what the forkserver has loaded is shared with every
scanning process, page by page, until one of them writes to it. The built-in stages are imported only when
a pipeline is built, so without this each scanning process imported its own copy of every stage module,
their compiled patterns and tables, and compiled its own copy of the shipped YARA rules. Loading them here,
then moving everything loaded out of the cyclic garbage collector's view (`gc.freeze`, whose passes would
otherwise write to every object's header and copy its page), leaves them shared.
"""

from __future__ import annotations

import gc
import importlib

import mailwarden.service.pool  # noqa: F401  (what a scanning process runs)
from mailwarden.pipeline.malware.rules import preload_shipped_pack
from mailwarden.pipeline.registry import BUILTIN_STAGES

for _target in BUILTIN_STAGES.values():
    importlib.import_module(_target.partition(":")[0])
preload_shipped_pack()  # the compiled YARA rules too, when the scanning processes use the shipped pack

gc.collect()
gc.freeze()
