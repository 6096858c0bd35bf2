"""A tiny DistributedDataParallel run on CPU (gloo): every rank trains the
same model on its own shard for a few steps; DDP all-reduces the gradients,
so all ranks must end with identical weights. Reads the torchrun contract
(MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK) from the environment."""
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

rank = int(os.environ["RANK"])
world = int(os.environ["WORLD_SIZE"])
dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)

torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts them)
model = DDP(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)

g = torch.Generator().manual_seed(100 + rank)  # a different shard per rank
x = torch.randn(32, 4, generator=g)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.25
for step in range(20):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    if step % 5 == 0:
        print(f"rank {rank} step {step} loss {loss.item():.4f}", flush=True)

# An explicit all-reduce too: the mean loss over ranks.
t = torch.tensor([loss.item()])
dist.all_reduce(t)
print(f"rank {rank} mean loss {t.item() / world:.4f}", flush=True)

w = torch.cat([p.detach().flatten() for p in model.module.parameters()])
with open(os.path.join(os.environ["OUT_DIR"], f"weights.{rank}"), "w") as f:
    f.write(" ".join(repr(v) for v in w.tolist()))
dist.destroy_process_group()
sys.exit(0)
