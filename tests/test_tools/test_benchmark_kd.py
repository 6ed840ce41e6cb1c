"""benchmark_kd.py: the measurement of one RL-KD mode, in process (the reward
read from the teacher's head is timed as reward measurement), and its
options checked before any run."""
import os.path as osp
import sys

import pytest

from test_tools import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import benchmark_kd  # noqa: E402


def test_disagreement_reward_is_timed_and_costed(digits_data, monkeypatch):
    monkeypatch.chdir(REPO)
    result = benchmark_kd.measure(
        'det', 'rl_policy', iters=2, warmup=1, rl_checkpoint=None,
        rl_options={'model.selector.env.reward': 'disagreement'})
    assert 0 < result['outcome_share'] < 0.5  # the head, not a pass
    assert 0 < result['policy_ppo_share'] < 0.5
    assert result['teacher_s'] > 0 and result['distill_cost'] >= 0


def test_amp_without_cuda_is_one_clear_error(monkeypatch, capsys):
    # mmengine's AmpOptimWrapper is CUDA only: refused before any run
    monkeypatch.setattr(sys, 'argv', ['benchmark_kd.py', '--task', 'cls',
                                      '--amp'])
    with pytest.raises(SystemExit) as exit_:
        benchmark_kd.main()
    assert exit_.value.code == 2
    assert '--amp needs --device cuda' in capsys.readouterr().err
