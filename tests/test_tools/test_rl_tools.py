"""RL-KD end to end on the real detection config (tiny): two training
iterations in the policy phases, a PPO update, and the policy heatmap and
reward signal tools on the resulting checkpoint."""
import os
import sys

import pytest
import torch

from test_tools import REPO, iters, random_teacher, run


def test_rl_kd_trains_and_draws_its_heatmap(tmp_path, digits_data):
    teacher = random_teacher(tmp_path, 'det')
    options = [f'model.teacher.checkpoint={teacher}',
               'train_dataloader.batch_size=2',
               'val_dataloader.dataset.indices=6',
               'model.selector.rollout_iters=2',
               'model.selector.ppo.minibatch_size=2',
               'custom_hooks.0.milestones=[0,1]',
               'default_hooks.logger.interval=1']
    work_dir = tmp_path / 'work'
    log = run(sys.executable, 'tools/train.py', 'configs/digits/det_rl_kd.py',
              '--work-dir', work_dir, '--cfg-options', *options, *iters(2))
    assert "distillation phase 'policy' from iteration 0" in log
    assert "distillation phase 'joint' from iteration 1" in log
    assert 'rl_approx_kl' in log and 'rl_reward' in log
    checkpoint = work_dir / 'iter_2.pth'
    assert torch.load(checkpoint, weights_only=False)[
        'rl_selector']['buffer']['pos'] == 0
    out = tmp_path / 'heatmap.png'
    table = run(sys.executable, 'tools/analysis_tools/policy_heatmap.py',
                'configs/digits/det_rl_kd.py', checkpoint, '--out', out,
                '--cfg-options', *options[1:3])
    rows = [line for line in table.splitlines() if line.startswith('| ')]
    assert rows[0].startswith('| group | n | p2 | p3 | p4 | p5 |')
    groups = [row.split('|')[1].strip() for row in rows[1:]]
    assert set(groups) & {'small', 'medium', 'large'}
    assert set(groups) - {'small', 'medium', 'large'} == {
        'sure', 'middle', 'unsure'}  # difficulty thirds of the student
    rates = [float(v) for row in rows[1:] for v in row.split('|')[3:7]]
    assert all(0 <= r <= 1 for r in rates)
    assert out.stat().st_size > 0
    signal = run(sys.executable, 'tools/analysis_tools/reward_signal.py',
                 'configs/digits/det_rl_kd.py', checkpoint, '--batches', '3',
                 '--cfg-options', *options[:2])
    assert 'samples: 6; gap reward' in signal
    rows = [line.split('|') for line in signal.splitlines()
            if line.startswith('| ') and 'difficulty' not in line]
    assert [row[1].strip() for row in rows] == ['sure', 'middle', 'unsure']
    assert all(float(row[3]) > 0 for row in rows)  # the teacher's gap
    assert 'Spearman: reward~entropy' in signal
    # the teacher's head on the student's RoIs: a KL per sample, scored
    # relative to the mean sample
    signal = run(sys.executable, 'tools/analysis_tools/reward_signal.py',
                 'configs/digits/det_rl_kd.py', checkpoint, '--batches', '3',
                 '--reward', 'disagreement', '--cfg-options', *options[:2])
    assert 'samples: 6; disagreement reward 1.000 ± ' in signal
    assert '| difficulty | entropy | disagreement reward |' in signal


@pytest.mark.parametrize('task', ['seg', 'cls'])
def test_seg_and_cls_rl_kd_skip_or_distill_whole_samples(
        tmp_path, task, digits_data):
    """The seg and cls RL-KD configs train their per-sample policy with the
    student's entropy in the state: every level of a sample together."""
    teacher = random_teacher(tmp_path, task)
    log = run(sys.executable, 'tools/train.py',
              f'configs/digits/{task}_rl_kd.py', '--work-dir',
              tmp_path / 'work', '--cfg-options',
              f'model.teacher.checkpoint={teacher}',
              'train_dataloader.batch_size=4',
              'val_dataloader.dataset.indices=4',
              'model.selector.rollout_iters=2',
              'model.selector.ppo.minibatch_size=4',
              'custom_hooks.0.milestones=[0,2]',
              'default_hooks.logger.interval=1', *iters(3))
    assert 'rl_approx_kl' in log  # a PPO update on the 2-iteration rollout
    for line in (line for line in log.splitlines() if 'sel_c2' in line):
        rates = {line.split(f'sel_{level}: ')[1].split()[0]
                 for level in ('c2', 'c3', 'c4', 'c5')}
        assert len(rates) == 1, line  # the same rate on every level


def test_reward_signal_report_reads_spread_and_ranks():
    sys.path.insert(0, os.path.join(REPO, 'tools', 'analysis_tools'))
    import reward_signal
    entropy = torch.linspace(0.1, 0.9, 9)
    reward = 1 + entropy  # grows with difficulty
    prob = torch.full((9, ), 0.5)
    lines = reward_signal.report(reward, entropy, prob)
    assert 'coefficient of variation 0.18' in lines[0]
    per_third = [float(line.split('|')[3]) for line in lines[4:7]]
    assert per_third == sorted(per_third) and per_third[0] < per_third[2]
    assert 'reward~entropy +1.00' in lines[-1]
    assert reward_signal.spearman(reward, -entropy) == pytest.approx(-1)
