import numpy as np
import pytest

from mirror_sweep.config import Dynamics, EnvConfig, Pairing
from mirror_sweep.run.env import make_effects, make_sequences, simulate


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
