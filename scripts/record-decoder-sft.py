#!/usr/bin/env python3
"""Keeps issue 17's experiment across sessions: appends each finished run of a scripts/experiment-decoder-sft.sh
folder to docs/results/decoder-sft-runs.jsonl (one line per run: its scores, time, tokens, the CPU, the teacher's
identity and the commit), skipping runs already recorded, and prints the table of every recorded run grouped by
student and variant (mean ± standard deviation over seeds, and how many teachers they came from). A folder's
speeds/ (bonsai-bench per depth) go to docs/results/decoder-sft-speed.jsonl; the table shows the newest of each depth.
A record with "kind": "aggregate" holds the mean and sd of seeds that were not kept one by one (from the README's
tables); a row shows it when it covers every seed the row's single records have.

A machine of this project keeps nothing between sessions, so the grid is run a slice at a time; each slice retrains
the teacher with the same recipe. The teacher is identified by the SHA-256 of its best/model.safetensors: equal on
the same CPU kind and code, different (within rounding) on another CPU, so a row whose runs came from more than one
teacher says so.
  python3 scripts/record-decoder-sft.py [RUNS_DIR ...]        (no folder: only print the table)
"""
import json, math, os, statistics, sys
from results_log import append, checksum, load, machine

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = os.environ.get("RESULTS_LOG", os.path.join(HERE, "..", "docs", "results", "decoder-sft-runs.jsonl"))
SPEED_LOG = os.environ.get("SPEED_LOG", os.path.join(HERE, "..", "docs", "results", "decoder-sft-speed.jsonl"))


def record(runs_dir, known):
    teacher = os.path.join(runs_dir, "teacher")
    if not os.path.exists(os.path.join(teacher, "summary.json")):
        sys.exit(f"record-decoder-sft: {runs_dir}: no teacher/summary.json (not an experiment folder, or unfinished)")
    weights = os.path.join(teacher, "best", "model.safetensors")
    teacher_id = checksum(weights)
    cpu, commit = machine(runs_dir)
    new = []
    for name in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, name, "summary.json")
        if not os.path.isfile(path) or (name, teacher_id) in known:
            continue
        s = json.load(open(path))
        run, _, seed = name.rpartition("-s") if name != "teacher" else ("teacher", "", "42")
        student, _, variant = run.partition("-") if run != "teacher" else ("teacher", "", "fine-tune")
        test = s.get("test", {})
        cfg = os.path.join(runs_dir, name, "config.json")
        lr = json.load(open(cfg)).get("learning_rate") if os.path.exists(cfg) else None
        new.append({"run": name, "student": student, "variant": variant, "seed": int(seed),
                    "rouge1": test.get("rouge1"), "rouge2": test.get("rouge2"), "rougeL": test.get("rougeL"),
                    "dev_perplexity": math.exp(s["best_dev_loss"]), "parameters": s.get("parameters"),
                    "training_loop_seconds": round(s.get("training_loop_seconds", float("nan")), 1),
                    "train_tokens": s.get("train_tokens_processed"), "steps": s.get("steps"), "learning_rate": lr,
                    "teacher": teacher_id, "cpu": cpu, "commit": commit})
        known.add((name, teacher_id))
    append(LOG, new)
    print(f"record-decoder-sft: {runs_dir}: {len(new)} new runs recorded (teacher {teacher_id})", file=sys.stderr)


def record_speeds(runs_dir):
    """Appends the folder's speeds/<depth>.json (bonsai-bench on the teacher and the spread students) to SPEED_LOG."""
    folder = os.path.join(runs_dir, "speeds")
    if not os.path.isdir(folder):
        return
    cpu, commit = machine(runs_dir)
    known = {(r["model"], r["cpu"], r["commit"]) for r in load(SPEED_LOG)}
    new = []
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".json")):
        s = json.load(open(os.path.join(folder, name)))
        if (s["model"], cpu, commit) in known:
            continue
        g, p = s["generate"], s["prefill"]
        new.append({"model": s["model"], "generation_tokens_per_s": g["tokens_per_s"], "prompt_tokens_per_s": p["tokens_per_s"],
                    "peak_rss_mib": max(g["peak_rss_mib"], p["peak_rss_mib"]), "kernels": g.get("kernels"),
                    "threads": g["threads"], "cpu": cpu, "commit": commit})
    append(SPEED_LOG, new)


def cpu_label(cpu):
    """"AMD EPYC family 25 model 17, AVX-512: yes" -> "25/17" (the legend under the table gives the whole line)."""
    words = cpu.replace(",", "").split()
    at = lambda w: words[words.index(w) + 1] if w in words else "?"
    return f"{at('family')}/{at('model')}"


def chosen(g):
    """A row's runs: the individual records, or an aggregate record (mean and sd of seeds not kept one by one) when
    it covers every seed the individual records have."""
    single = [r for r in g if r.get("kind") != "aggregate"]
    covering = [a for a in g if a.get("kind") == "aggregate" and {r["seed"] for r in single} <= set(a["seeds"])]
    return max(covering, key=lambda a: len(a["seeds"])) if covering else None, single


STUDENTS = ["teacher", "s15", "bi15", "s10", "bi10", "s6", "random15"]  # the table's order; others follow
VARIANTS = ["fine-tune", "sft", "logit-kd", "hidden-kd", "pseudo", "dynsdpb", "dynsdpb-equal"]
rank = lambda order, x: order.index(x) if x in order else len(order)


def scores(g):
    """A row's runs, its seeds and its score cells: mean ± sd over the single records, or the aggregate's."""
    fmt = lambda v, d=4: f"{statistics.mean(v):.{d}f} ± {statistics.stdev(v):.{d}f}" if len(v) > 1 else f"{v[0]:.{d}f}"
    aggregate, single = chosen(g)
    if aggregate:
        cell = lambda k, d=4: f"{aggregate[k][0]:.{d}f} ± {aggregate[k][1]:.{d}f}"
        return [aggregate], aggregate["seeds"], [cell("rouge1"), cell("rouge2"), cell("rougeL"), cell("dev_perplexity", 2)]
    single = sorted(single, key=lambda r: r["seed"])
    cells = [fmt([r[k] for r in single]) for k in ("rouge1", "rouge2", "rougeL")] + [fmt([r["dev_perplexity"] for r in single], 2)]
    return single, [r["seed"] for r in single], cells


def speed_cells(student, newest):
    """Generation and prompt tokens/s of the student's depth (the newest measurement), with the ratio to the teacher's."""
    depth = "teacher" if student == "teacher" else "s" + "".join(c for c in student if c.isdigit())
    sp, top = newest.get(depth), newest.get("teacher")
    rate = lambda k: f"{sp[k]:.1f}" + (f" ({sp[k] / top[k]:.2f}x)" if top and student != "teacher" else "") if sp else "n/a"
    return rate("generation_tokens_per_s"), rate("prompt_tokens_per_s")


def table(rows, speeds):
    groups = {}
    for r in rows:
        key = (r["student"], r["teacher"]) if r["student"] == "teacher" else (r["student"], r["variant"])
        groups.setdefault(key, []).append(r)  # each teacher its own row
    newest = {s["model"]: s for s in speeds}  # the last measurement of each depth
    cpus = {}
    print("| student | training | runs (seeds) | teachers | test ROUGE-1 | test ROUGE-2 | test ROUGE-L | dev perplexity | parameters "
          "| generation tokens/s (batch 1; x teacher) | prompt tokens/s (x teacher) | training s (fastest; CPU) | training tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (student, variant), g in sorted(groups.items(), key=lambda kv: (rank(STUDENTS, kv[0][0]), rank(VARIANTS, kv[0][1]), kv[0])):
        runs, seeds, cells = scores(g)
        variant = f"fine-tune ({g[0]['teacher']})" if student == "teacher" else variant
        timed = [r for r in g if r["training_loop_seconds"] is not None]  # an aggregate has no time: its single records may
        fastest = min(timed, key=lambda r: r["training_loop_seconds"]) if timed else None
        if fastest:
            cpus[cpu_label(fastest["cpu"])] = fastest["cpu"]
        when = f"{fastest['training_loop_seconds']:.0f} ({cpu_label(fastest['cpu'])})" if fastest else "n/a"
        gen, prompt = speed_cells(student, newest)
        print(f"| {student} | {variant} | {len(seeds)} ({','.join(map(str, seeds))}) | {len({r['teacher'] for r in runs})} | "
              + " | ".join(cells) + f" | {runs[0]['parameters'] / 1e6:.1f} M | {gen} | {prompt} | {when} | {runs[0]['train_tokens']} |")
    print()
    for label, cpu in sorted(cpus.items()):
        print(f"CPU {label}: {cpu}")
    for s in sorted({(s["cpu"], s["commit"], s["threads"]) for s in newest.values()}):
        print(f"speeds (bonsai-bench, fp32 folder, {s[2]} threads): {s[0]}, commit {s[1]}")


if __name__ == "__main__":
    known = {(r["run"], r["teacher"]) for r in load(LOG)}
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    for d in sys.argv[1:]:
        record(d, known)
        record_speeds(d)
    table(load(LOG), load(SPEED_LOG))
