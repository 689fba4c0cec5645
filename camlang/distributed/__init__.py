"""Running one `camlang run` as many processes (torch.distributed, launched by torchrun).

- `Dist` (`context.py`): this process's rank, the world size, its device, and the few collectives
  a run needs (gather on rank 0, all-gather, broadcast, barrier), all with the process group's timeout.
- `launch_workers` (`launch.py`): `camlang run --workers N` through torch's elastic launcher.
- `shard` (`shard.py`): which batches of a data set a rank scores.

See docs/scaling.md for the design and the cost model.
"""

from camlang.distributed.context import Dist, WorkerFailure
from camlang.distributed.shard import Shard, shard_batches

__all__ = ["Dist", "Shard", "WorkerFailure", "shard_batches"]
