"""Checks ps_bench --json output: every mode, every key, positive figures and ratios."""
import json
import sys

REQUIRED = {
    "dense": ["floats", "shards", "clients", "gradients", "rounds", "ours_gbps",
              "ours_mean_gbps", "raw_gbps", "raw_mean_gbps", "ratio", "mean_ratio",
              "sequential_gbps", "sequential_ratio", "cpu_s_per_gb", "raw_cpu_s_per_gb",
              "cpu_ratio", "cpu_cores", "raw_cpu_cores"],
    "sparse": ["keys", "dim", "dist", "consistency", "shards", "clients", "pull_keys_per_s",
               "push_keys_per_s", "pull_gbps", "push_gbps", "memcpy_gbps", "ratio"],
    "latency": ["op", "bytes", "p50_us", "p99_us", "calls_per_s", "raw_p50_us", "ratio"],
    "e2e": ["job", "workers", "cpu_threads", "samples_per_s", "iter_ms", "compute_ms", "pull_ms", "push_ms",
            "wait_ms", "comm_share", "speedup"],
    "checkpoint": ["floats", "optimizer", "mb", "ours_mbps", "raw_mbps", "ratio", "restore_s", "pause_ms",
                   "pause_share", "push_stall_ms", "trigger_push_ms", "other_push_ms",
                   "whole_trigger_push_ms", "whole_next_push_ms", "whole_other_push_ms",
                   "whole_copies_on_write"],
}
# Figures that must be > 0 (the others may be 0, e.g. wait_ms with one worker).
POSITIVE = {"ours_gbps", "raw_gbps", "ratio", "sequential_gbps", "sequential_ratio",
            "rounds", "ours_mean_gbps", "raw_mean_gbps", "mean_ratio", "cpu_s_per_gb",
            "raw_cpu_s_per_gb", "cpu_ratio", "cpu_cores", "raw_cpu_cores", "cpu_threads",
            "pull_keys_per_s", "push_keys_per_s",
            "pull_gbps", "push_gbps", "memcpy_gbps", "p50_us", "p99_us", "calls_per_s",
            "raw_p50_us", "samples_per_s", "iter_ms", "speedup", "ours_mbps", "raw_mbps",
            "restore_s", "trigger_push_ms", "other_push_ms", "whole_trigger_push_ms",
            "whole_next_push_ms", "whole_other_push_ms"}


def main(path):
    with open(path) as f:
        data = json.load(f)
    errors = []
    for mode, keys in REQUIRED.items():
        rows = data.get(mode)
        if not rows:
            errors.append(f"{mode}: no rows")
            continue
        for i, row in enumerate(rows):
            for k in keys:
                if k not in row:
                    errors.append(f"{mode}[{i}]: missing {k}")
                elif k in POSITIVE and not (isinstance(row[k], (int, float)) and row[k] > 0):
                    errors.append(f"{mode}[{i}]: {k} = {row[k]!r}, want > 0")
    ops = {r.get("op") for r in data.get("latency", [])}
    for op in ("pull", "push", "pushpull"):
        if op not in ops:
            errors.append(f"latency: no {op} row")
    if {r.get("consistency") for r in data.get("sparse", [])} != {"async", "sync"}:
        errors.append("sparse: want rows of ASYNC and of SYNC jobs")
    if not any(r.get("gradients") == "bf16" for r in data.get("dense", [])):
        errors.append("dense: no row with bf16 gradients")
    if not any(r.get("optimizer") == "adam" for r in data.get("checkpoint", [])):
        errors.append("checkpoint: no row with an Adam table")
    workers = {(r.get("job"), r.get("workers")) for r in data.get("e2e", [])}
    # The bundled jobs, the Keras and PyTorch examples included (their data is made by
    # the bench when absent).
    for job in ("digits_softmax", "fashion_mnist_mlp", "keras_mirrored_binary",
                "torch_dataparallel_binary"):
        if (job, 1) not in workers:
            errors.append(f"e2e: no rows for job {job}")
    for job in {r.get("job") for r in data.get("e2e", [])}:
        for w in (1, 2):
            if (job, w) not in workers:
                errors.append(f"e2e: job {job} lacks a {w}-worker row")
    if errors:
        print("\n".join(errors))
        return 1
    print("ok:", ", ".join(f"{m} {len(data[m])} rows" for m in REQUIRED))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
