"""Evaluate a checkpoint with the config's test dataloader and evaluator.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from mmengine.evaluator import DumpResults
from mmengine.runner import Runner

from pyramidkd_mm.checkpoint import trust_checkpoints
from pyramidkd_mm.datasets import prepare_data
from pyramidkd_mm.engine import setup_cpu_distributed

from train import build_cfg, parse_common


def parse_args():
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for logs and metrics')
    parser.add_argument('--out', help='dump the raw predictions to a .pkl')
    return parse_common(parser)


def main():
    args = parse_args()
    cfg = build_cfg(args)
    cfg.load_from = args.checkpoint
    trust_checkpoints(args.checkpoint)  # named by the user on purpose
    prepare_data(cfg)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if args.out:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    main()
