"""PyTorch DistributedDataParallel on CPU (gloo), launched by Forge with the
torchrun contract (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK; no torchrun
needed). Each rank trains an MLP on its shard of the wine table that
scikit-learn ships; DDP all-reduces the gradients. Rank 0 logs metrics to the
job's run with the Forge Python client and exports the model as ONNX."""
import os

import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_wine
from torch.nn.parallel import DistributedDataParallel as DDP

import forge  # on PYTHONPATH in every Forge job

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)

X, y = load_wine(return_X_y=True)
X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
order = np.random.default_rng(0).permutation(len(X))
val, train = order[:36], order[36:]
shard = train[rank::world]  # every rank its own rows
xs, ys = torch.from_numpy(X[shard]), torch.from_numpy(y[shard])
xv, yv = torch.from_numpy(X[val]), torch.from_numpy(y[val])

torch.manual_seed(0)
model = DDP(torch.nn.Sequential(torch.nn.Linear(13, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
if rank == 0:
    forge.log_params({"world_size": world, "hidden": 32, "lr": 0.01, "epochs": 60})
for epoch in range(60):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xs), ys)
    loss.backward()
    opt.step()
    t = torch.tensor([loss.item()])
    dist.all_reduce(t)  # the mean training loss over ranks
    if rank == 0 and epoch % 5 == 4:
        with torch.no_grad():
            acc = (model.module(xv).argmax(1) == yv).float().mean().item()
        forge.log_metrics({"train_loss": t.item() / world, "val_accuracy": acc}, step=epoch)

# All ranks hold the same weights: check it, then rank 0 exports.
flat = torch.cat([p.detach().flatten() for p in model.module.parameters()])
ref = flat.clone()
dist.broadcast(ref, 0)
assert torch.equal(flat, ref), f"rank {rank} weights differ from rank 0"
if rank == 0:
    net = torch.nn.Sequential(model.module, torch.nn.Softmax(dim=1)).eval()
    os.makedirs("out", exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 13), "out/model.onnx", input_names=["input"], output_names=["probabilities"],
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=13)
    forge.log_artifact("out/model.onnx", "model")
    print(f"val_accuracy={acc:.3f}; exported out/model.onnx", flush=True)
dist.destroy_process_group()
