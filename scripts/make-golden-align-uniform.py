#!/usr/bin/env python3
"""Golden values for distillation's alignment/uniformity loss (Farhat & Chen 2024; sfarhat/dapt
kd_losses/align_uniform.py and models/projector.py, 'mocov2' projector), written to
Tests/BonsaiDataTests/Fixtures/align-uniform-golden.json. Run with the reference environment
(shared/reference): features of a student [6, 10] and a teacher [6, 14], each through its own projector
Linear(d, d) -> ReLU -> Linear(d, 8) -> L2-normalise; L = align_w * mean_i ||s_i - t_i||^2
+ unif_w * (log mean_{i<j} exp(-t ||s_i - s_j||^2) + the same for t) / 2, with align_w 1, unif_w 1, t 2;
plus the gradients of L with respect to both features and all four projector weights and biases."""
import json, pathlib
import torch

torch.manual_seed(5)
B, ds, dt, out = 6, 10, 14, 8
fs = torch.randn(B, ds, dtype=torch.float64, requires_grad=True)
ft = torch.randn(B, dt, dtype=torch.float64, requires_grad=True)
def projector(d):
    return [torch.nn.Linear(d, d).double(), torch.nn.Linear(d, out).double()]
ps, pt = projector(ds), projector(dt)
def embed(p, x):
    return torch.nn.functional.normalize(p[1](torch.relu(p[0](x))), dim=-1)
def align(x, y, alpha=2):
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()
def uniform(x, t=2):
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()
s, t = embed(ps, fs), embed(pt, ft)
a, u = align(s, t), (uniform(s) + uniform(t)) / 2
loss = a + u
loss.backward()
f = lambda x: x.detach().reshape(-1).tolist()
golden = {"batch": B, "student_width": ds, "teacher_width": dt, "out": out, "student_features": f(fs), "teacher_features": f(ft),
          "align": a.item(), "uniform": u.item(), "loss": loss.item(),
          "grad_student_features": f(fs.grad), "grad_teacher_features": f(ft.grad)}
for name, p in [("student", ps), ("teacher", pt)]:
    for i, lin in enumerate(p):
        key = f"{name}.{'0' if i == 0 else '2'}"
        golden[key + ".weight"] = f(lin.weight); golden[key + ".bias"] = f(lin.bias)
        golden["grad_" + key + ".weight"] = f(lin.weight.grad); golden["grad_" + key + ".bias"] = f(lin.bias.grad)
path = pathlib.Path(__file__).resolve().parent.parent / "Tests/BonsaiDataTests/Fixtures/align-uniform-golden.json"
path.write_text(json.dumps(golden, indent=1) + "\n")
print(f"wrote {path}: loss {loss.item():.6f} (align {a.item():.6f}, uniform {u.item():.6f})")
