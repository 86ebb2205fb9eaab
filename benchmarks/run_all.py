"""``make bench``: every benchmark, one after the other, each in its own
process (so one benchmark's imports, threads and caches never colour the next
one's timings). Each prints its own table and says which baseline it ran
beside; the figures that go into RESULTS.md are copied from these runs."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ("DICOM loading vs SimpleITK", ["-m", "benchmarks.bench_load"]),
    ("synthetic patients", ["-m", "benchmarks.bench_synth"]),
    ("viewer repaint / start-up / memory", ["-m", "benchmarks.bench_viewer"]),
    ("nodule inference vs plain MONAI sliding window", ["-m", "benchmarks.bench_inference"]),
    ("a 512x512x300 CT from DICOM to findings, per stage", ["-m", "benchmarks.bench_large_ct"]),
    ("dense readers on the CPU: transposed convolution and precision", ["-m", "benchmarks.bench_dense_cpu"]),
    ("risk scores", ["-m", "benchmarks.bench_risk"]),
]


def main() -> int:
    failed = []
    for title, args in BENCHES:
        print(f"\n=== {title}: python {' '.join(args)}", flush=True)
        if subprocess.call([sys.executable, *args]) != 0:
            failed.append(title)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
