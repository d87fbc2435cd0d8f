"""What the PyTorch reference scripts (reference_finetune.py, reference_decoder_finetune.py) share: the Bonsai run
folder from the command line, its config.json and split.json, the thread count, torch seeded with the run's seed."""
import argparse, json, os
import torch

def load_run():
    """(args, config, split) of `SCRIPT RUN [--threads N]`."""
    p = argparse.ArgumentParser()
    p.add_argument("run"); p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    cfg = json.load(open(os.path.join(a.run, "config.json")))
    split = json.load(open(os.path.join(a.run, "split.json")))
    torch.set_num_threads(a.threads)
    torch.manual_seed(cfg["seed"])
    return a, cfg, split
