"""Write the batching benchmark's model: a 256-1024-1024-10 MLP, random weights
(fixed seed), dynamic batch axis. Usage: /usr/bin/python3 make_mlp.py OUT.onnx
The file is about 5 MB, so it is generated, not committed."""
import sys
import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(256, 1024), torch.nn.ReLU(),
    torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
    torch.nn.Linear(1024, 10)).eval()
torch.onnx.export(model, torch.zeros(1, 256), sys.argv[1], input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)
