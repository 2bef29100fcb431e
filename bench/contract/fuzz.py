"""Coverage-guided fuzzing of bench/contract/fuzz_targets.py with atheris (libFuzzer for Python).

`python -m bench.contract.fuzz [--seconds 60] [--work-dir DIR] [TARGET …]` runs each target in its own process
(libFuzzer exits when it is done), seeded with valid inputs; a crash or an input slower than --timeout leaves
its input in the work dir as crash-*/timeout-*. Exit status 1 if any target failed. bench/README.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT_SECONDS = 10


@dataclass
class FuzzRun:
    target: str
    ok: bool
    runs: int
    seconds: float
    artifacts: list[Path]
    output: str


def fuzz_target(target: str, seconds: float, work_dir: Path, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
                rss_limit_mb: int = 2048, seed: int | None = None) -> FuzzRun:
    """Fuzz one target for `seconds` in a child process; artifacts (failing inputs) land under work_dir.
    A `seed` makes libFuzzer's choices repeatable (the test suite's run); None draws a new one."""
    corpus, artifacts = work_dir / target / "corpus", work_dir / target / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.contract.fuzz", "--child", target, f"-max_total_time={int(seconds)}",
               f"-timeout={timeout_seconds}", f"-rss_limit_mb={rss_limit_mb}", f"-artifact_prefix={artifacts}/",
               *([f"-seed={seed}"] if seed is not None else []), str(corpus)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            timeout=seconds + timeout_seconds + 120)
    output = result.stdout + result.stderr
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    return FuzzRun(target, result.returncode == 0, int(done.group(1)) if done else 0,
                   float(done.group(2)) if done else seconds, sorted(artifacts.iterdir()), output)


def _child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["countdb"]):
        from bench.contract import fuzz_targets
    corpus = Path(libfuzzer_args[-1])
    for index, seed in enumerate(fuzz_targets.seeds(target)):
        (corpus / f"seed-{index}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *libfuzzer_args], fuzz_targets.TARGETS[target])
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2:])
        return 0
    from bench.contract.fuzz_targets import TARGETS

    parser = argparse.ArgumentParser(prog="python -m bench.contract.fuzz", description=__doc__)
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[], metavar="TARGET",
                        help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("--seconds", type=float, default=60, help="per target (default 60)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_SECONDS, help="per input, seconds")
    parser.add_argument("--work-dir", type=Path, help="corpus and artifacts (default: a new temp dir)")
    args = parser.parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="count-fuzz-"))
    failed = 0
    for target in args.targets or list(TARGETS):
        run = fuzz_target(target, args.seconds, work_dir, args.timeout)
        print(f"{target:18} {'ok' if run.ok else 'FAILED':6} {run.runs:>10} inputs in {run.seconds:.0f} s"
              + "".join(f"\n    {artifact}" for artifact in run.artifacts), flush=True)
        if not run.ok:
            failed += 1
            print(run.output[-4000:], flush=True)
    print(f"work dir: {work_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
