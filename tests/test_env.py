import numpy as np
import pytest

from mirror_sweep.config import ActionProcess, Dynamics, EnvConfig, Pairing
from mirror_sweep.run.env import draw_actions, make_effects, make_sequences, simulate


def test_linear_dynamics_follow_the_formula():
    env = EnvConfig(noise_std=0.0)
    rng = np.random.default_rng(0)
    effects = make_effects(env, rng)
    actions = rng.integers(0, env.n_actions, size=(5, env.seq_len))
    sensory = simulate(actions, effects, env, rng)
    state = np.zeros((5, env.sensory_dim))
    for t in range(env.seq_len):
        state = 0.9 * state + effects[actions[:, t]]
        np.testing.assert_allclose(sensory[:, t], state, rtol=1e-5, atol=1e-5)


def test_noise_has_the_configured_scale():
    env = EnvConfig(noise_std=0.1, seq_len=1)
    rng = np.random.default_rng(1)
    effects = make_effects(env, rng)
    actions = np.zeros((4000, 1), dtype=np.int64)
    residual = simulate(actions, effects, env, rng)[:, 0] - effects[0]
    assert residual.std() == pytest.approx(0.1, rel=0.05)


def test_paired_observe_input_is_generated_by_the_perform_actions():
    env = EnvConfig(noise_std=0.0)
    rng = np.random.default_rng(2)
    effects = make_effects(env, rng)
    data = make_sequences(30, Pairing.paired, effects, env, rng)
    regenerated = simulate(data.perform_actions, effects, env, rng)
    np.testing.assert_allclose(data.observe_sensory, regenerated, atol=1e-5)
    np.testing.assert_array_equal(data.observe_actions, data.perform_actions)


def test_independent_pairing_breaks_the_link():
    env = EnvConfig(noise_std=0.0)
    rng = np.random.default_rng(3)
    effects = make_effects(env, rng)
    data = make_sequences(30, Pairing.independent, effects, env, rng)
    regenerated = simulate(data.perform_actions, effects, env, rng)
    mismatched = np.abs(data.observe_sensory - regenerated).max(axis=(1, 2)) > 1e-3
    assert mismatched.mean() > 0.9
    # each side stays internally consistent: observe sensory comes from observe actions
    np.testing.assert_allclose(data.observe_sensory,
                               simulate(data.observe_actions, effects, env, rng), atol=1e-5)
    np.testing.assert_allclose(data.perform_sensory, regenerated, atol=1e-5)


def test_randomized_dynamics_carry_no_action_information():
    env = EnvConfig(dynamics=Dynamics.randomized, noise_std=0.0, seq_len=1)
    rng = np.random.default_rng(4)
    effects = make_effects(env, rng)
    data = make_sequences(4000, Pairing.paired, effects, env, rng)
    first_step = data.observe_sensory[:, 0]
    means = np.stack([first_step[data.perform_actions[:, 0] == a].mean(0)
                      for a in range(env.n_actions)])
    assert np.abs(means).max() < 0.15  # every action's mean effect is ~0, unlike linear effects
    assert np.abs(effects).max() > 0.5


def test_iid_actions_are_one_draw_of_rng_integers_as_before():
    # the default process must reproduce the data of earlier versions bit for bit
    env = EnvConfig()
    assert env.action_process is ActionProcess.iid
    actions = draw_actions(50, env, np.random.default_rng(5))
    expected = np.random.default_rng(5).integers(0, env.n_actions, size=(50, env.seq_len),
                                                 dtype=np.int64)
    np.testing.assert_array_equal(actions, expected)


@pytest.mark.parametrize("stay_prob", [0.9, 0.5, 0.0])
def test_sticky_actions_stay_at_the_configured_rate_and_stay_uniform(stay_prob):
    env = EnvConfig(action_process=ActionProcess.sticky, stay_prob=stay_prob, n_actions=4)
    actions = draw_actions(5000, env, np.random.default_rng(6))
    stays = (actions[:, 1:] == actions[:, :-1]).mean()
    assert stays == pytest.approx(stay_prob, abs=0.01)
    frequencies = np.bincount(actions.ravel(), minlength=4) / actions.size
    np.testing.assert_allclose(frequencies, 0.25, atol=0.01)
    assert actions.min() >= 0 and actions.max() < 4 and actions.dtype == np.int64


def test_sticky_with_stay_one_over_k_has_iid_transitions():
    env = EnvConfig(action_process=ActionProcess.sticky, stay_prob=0.25, n_actions=4)
    actions = draw_actions(5000, env, np.random.default_rng(7))
    transitions = np.zeros((4, 4))
    np.add.at(transitions, (actions[:, :-1].ravel(), actions[:, 1:].ravel()), 1)
    np.testing.assert_allclose(transitions / transitions.sum(1, keepdims=True), 0.25, atol=0.02)


def test_constant_actions_fill_each_sequence_with_one_uniform_action():
    env = EnvConfig(action_process=ActionProcess.constant, n_actions=3)
    actions = draw_actions(3000, env, np.random.default_rng(8))
    assert (actions == actions[:, :1]).all()
    np.testing.assert_allclose(np.bincount(actions[:, 0], minlength=3) / 3000, 1 / 3, atol=0.03)


def test_every_action_process_feeds_the_dynamics_and_pairing():
    for process in ActionProcess:
        env = EnvConfig(action_process=process, noise_std=0.0)
        rng = np.random.default_rng(9)
        effects = make_effects(env, rng)
        data = make_sequences(20, Pairing.paired, effects, env, rng)
        np.testing.assert_allclose(data.observe_sensory,
                                   simulate(data.perform_actions, effects, env, rng), atol=1e-5)
