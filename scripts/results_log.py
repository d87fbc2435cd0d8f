"""What the experiment recorders share (scripts/record-decoder-sft.py, scripts/experiment-distill-pretraining.py): a
JSONL file of finished runs kept in the repo, so slices of a grid run in different sessions add up."""
import hashlib, json, os, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def checksum(path):
    """The first 16 hex digits of a file's SHA-256 (a teacher's identity)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()[:16]


def machine(runs_dir):
    """The CPU line an experiment script wrote into its folder, and the commit its binary was built from: the folder's
    commit.txt (the script writes it when it starts: $BONSAI_COMMIT for a copied binary, else the checkout's HEAD),
    or the commit checked out now for a folder without one."""
    def read(name):
        path = os.path.join(runs_dir, name)
        return open(path).read().strip() if os.path.exists(path) else None
    cpu = (read("cpu.txt") or "?").removeprefix("CPU: ")
    commit = read("commit.txt") or subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                                  capture_output=True, text=True).stdout.strip()
    return cpu, commit


def load(log):
    return [json.loads(l) for l in open(log)] if os.path.exists(log) else []


def append(log, rows):
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
