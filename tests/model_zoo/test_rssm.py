"""RSSM (Dreamer): straight-through categoricals, unimix, KL balancing and free bits, two-hot, save/load, resets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.base import Batch
from model_zoo.checkpoint import CheckpointError
from model_zoo.models.rssm import (
    RSSM,
    Config,
    categorical_kl,
    kl_balance,
    straight_through_sample,
    symexp,
    symlog,
    twohot,
    unimix_logits,
)
from tests.model_zoo.fixtures import drifting_batch, random_batch

TINY = dict(stoch=4, classes=5, hidden=16, units=16, depth=4, vector_hidden=16, reward_bins=21)
DICT = spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
                    "state": spaces.Box(-1.0, 1.0, (3,), np.float32)})
VECTOR = spaces.Box(-1.0, 1.0, (3,), np.float32)
DISCRETE = spaces.Discrete(3)


def make(obs_space=VECTOR, action_space=DISCRETE, seed: int = 0, **overrides) -> RSSM:
    torch.manual_seed(seed)
    model = model_zoo.make("rssm", obs_space, action_space, **{**TINY, **overrides})
    assert isinstance(model, RSSM)
    return model


# --- straight-through categoricals ---------------------------------------------------


def test_straight_through_sample_is_one_hot_with_the_gradient_of_the_probabilities():
    logits = torch.randn(6, 4, 5, requires_grad=True)
    sample = straight_through_sample(logits, torch.Generator().manual_seed(0))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(sample.detach().sum(-1), torch.ones(6, 4))
    weights = torch.randn(6, 4, 5)
    (grad_sample,) = torch.autograd.grad((sample * weights).sum(), logits)
    (grad_probs,) = torch.autograd.grad((torch.softmax(logits, -1) * weights).sum(), logits)
    assert torch.allclose(grad_sample, grad_probs, atol=1e-6)


def test_straight_through_samples_follow_the_probabilities_and_the_generator():
    probs = torch.tensor([0.1, 0.6, 0.3])
    logits = probs.log().expand(20_000, 1, 3)
    sample = straight_through_sample(logits, torch.Generator().manual_seed(1)).detach()
    freq = sample.mean(dim=(0, 1))
    assert torch.allclose(freq, probs, atol=0.015), freq
    again = straight_through_sample(logits, torch.Generator().manual_seed(1)).detach()
    other = straight_through_sample(logits, torch.Generator().manual_seed(2)).detach()
    assert torch.equal(sample, again) and not torch.equal(sample, other)


def test_unimix_keeps_every_class_at_least_unimix_over_k():
    logits = torch.tensor([[50.0, -50.0, -50.0, -50.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(1))
    assert float(probs.min()) == pytest.approx(0.01 / 4, rel=1e-4)
    assert float(probs.max()) == pytest.approx(0.99 + 0.01 / 4, rel=1e-4)
    assert torch.allclose(unimix_logits(logits, 0.0), torch.log_softmax(logits, -1))


# --- KL balancing and free bits ---------------------------------------------------------


def bernoulli_kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_categorical_kl_of_known_distributions_sums_over_variables():
    p, q = torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5])
    post = torch.stack([p.log(), q.log()])[None]  # (1, S=2, K=2): the second variable equals the prior
    prior = torch.stack([q.log(), q.log()])[None]
    assert float(categorical_kl(post, prior)) == pytest.approx(bernoulli_kl(0.8, 0.5), rel=1e-5)
    assert float(categorical_kl(prior, prior)) == pytest.approx(0.0, abs=1e-7)


def test_kl_balance_weights_the_prior_and_the_posterior_gradients_separately():
    post = torch.tensor([[[0.9, 0.1]]]).log().requires_grad_()
    prior = torch.tensor([[[0.3, 0.7]]]).log().requires_grad_()
    terms = kl_balance(post, prior, dyn_scale=0.5, rep_scale=0.1, free_nats=0.0)
    kl = bernoulli_kl(0.9, 0.3)
    assert float(terms.dyn.detach()) == pytest.approx(kl, rel=1e-5)
    assert float(terms.rep.detach()) == pytest.approx(kl, rel=1e-5)
    assert float(terms.loss.detach()) == pytest.approx(0.6 * kl, rel=1e-5)
    grad_post, grad_prior = torch.autograd.grad(terms.loss.sum(), [post, prior])
    ref_post, ref_prior = torch.autograd.grad(categorical_kl(post, prior).sum(), [post, prior])
    assert torch.allclose(grad_prior, 0.5 * ref_prior, atol=1e-6)  # dyn trains the prior
    assert torch.allclose(grad_post, 0.1 * ref_post, atol=1e-6)  # rep trains the posterior


def test_free_bits_clip_each_term_and_stop_its_gradient_below_the_threshold():
    # two steps of two binary variables against a uniform prior: KL 0.02 and 1.27 nats
    post = torch.tensor([[[0.6, 0.4], [0.5, 0.5]], [[0.99, 0.01], [0.01, 0.99]]]).log().requires_grad_()
    prior = torch.full((2, 2, 2), 0.5).log().requires_grad_()
    terms = kl_balance(post, prior, dyn_scale=0.5, rep_scale=0.1, free_nats=1.0)
    small, large = bernoulli_kl(0.6, 0.5), 2 * bernoulli_kl(0.99, 0.5)
    assert small < 1.0 < large
    assert terms.loss.tolist() == pytest.approx([0.6 * 1.0, 0.6 * large], rel=1e-5)
    assert terms.dyn.tolist() == pytest.approx([small, large], rel=1e-5)  # the KL itself is reported unclipped
    grad_post, grad_prior = torch.autograd.grad(terms.loss.sum(), [post, prior])
    assert torch.all(grad_post[0] == 0) and torch.all(grad_prior[0] == 0)  # under the free bits: no gradient
    assert grad_post[1].abs().sum() > 0 and grad_prior[1].abs().sum() > 0


# --- symlog and two-hot ------------------------------------------------------------------


def test_symlog_symexp_and_twohot_round_trip():
    x = torch.tensor([-1000.0, -3.0, -0.01, 0.0, 0.5, 7.0, 1e5])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-4)
    bins = torch.linspace(-20, 20, 255)
    code = twohot(symlog(x), bins)
    assert torch.allclose(code.sum(-1), torch.ones(len(x)))
    assert ((code > 0).sum(-1) <= 2).all()
    assert torch.allclose(symexp((code * bins).sum(-1)), x, rtol=1e-3)
    assert torch.equal(twohot(torch.tensor([99.0, -99.0]), bins).argmax(-1), torch.tensor([254, 0]))  # clipped


@pytest.mark.parametrize("reward_loss", ["twohot", "mse"])
def test_the_reward_head_learns_a_reward_far_outside_unit_scale(reward_loss):
    model = make(reward_loss=reward_loss, reward_bins=255)
    with torch.no_grad():
        assert float(model.predict_reward(torch.zeros(2, model.feature_dim)).abs().max()) < 1e-5  # starts at 0
    feat = torch.randn(64, model.feature_dim)
    target = torch.where(feat[:, 0] > 0, 50.0, -2.0)
    optimizer = torch.optim.Adam(model.reward_head.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        model._reward_loss(feat, target).mean().backward()
        optimizer.step()
    with torch.no_grad():
        assert torch.allclose(model.predict_reward(feat), target, rtol=0.1, atol=0.2)


# --- the model --------------------------------------------------------------------------


@pytest.mark.parametrize("obs_space", [VECTOR, DICT], ids=["vector", "dict"])
def test_save_and_load_give_the_same_model(obs_space, tmp_path):
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    model = make(obs_space, action_space)
    batch = random_batch(obs_space, action_space, B=2, T=5)
    loaded = model_zoo.load(model.save(tmp_path / "m"))
    assert isinstance(loaded, RSSM) and loaded.config == model.config
    assert "bins" not in dict(loaded.state_dict())  # derived from the config, not stored
    with torch.no_grad():
        states = []
        for m in (model, loaded):
            state = m.observe(m.initial_state(2), batch.action[:, 0], batch.at(0).obs, batch.is_first[:, 0])
            out = m.imagine(state, batch.action[:, 1], generator=torch.Generator().manual_seed(3))
            states.append((m.features(out.state), out.reward, out.terminated, m.decode(out.state)))
        torch.manual_seed(0)
        loss_a = model.loss(batch)[0]
        torch.manual_seed(0)
        loss_b = loaded.loss(batch)[0]
    (fa, ra, ta, da), (fb, rb, tb, db) = states
    assert torch.equal(fa, fb) and torch.equal(ra, rb) and torch.equal(ta, tb)
    for key in da if isinstance(da, dict) else [None]:
        assert torch.equal(da[key], db[key]) if key is not None else torch.equal(da, db)
    assert torch.equal(loss_a, loss_b)


def test_observe_resets_at_episode_starts_and_filters_deterministically():
    model = make()
    obs = torch.tensor([[0.2, -0.3, 0.5], [0.2, -0.3, 0.5]])
    action = torch.tensor([1, 1])
    with torch.no_grad():
        other = model.imagine(model.initial_state(2), torch.tensor([2, 0]), generator=torch.Generator().manual_seed(0))
        a = model.observe(other.state, action, obs, torch.tensor([True, False]))
        b = model.observe(model.initial_state(2), torch.tensor([0, 0]), obs, torch.tensor([True, True]))
        again = model.observe(other.state, action, obs, torch.tensor([True, False]))
    assert torch.equal(a["deter"][0], b["deter"][0]) and torch.equal(a["stoch"][0], b["stoch"][0])
    assert not torch.equal(a["deter"][1], b["deter"][1])  # row 1 kept its history
    assert all(torch.equal(a[k], again[k]) for k in a)
    stoch = a["stoch"].reshape(2, TINY["stoch"], TINY["classes"])
    assert torch.equal(stoch.sum(-1), torch.ones(2, TINY["stoch"]))  # one class per variable


def test_imagine_samples_the_prior_with_the_generator():
    model = make(stoch=16, classes=8)
    state = model.initial_state(64)
    action = torch.zeros(64, dtype=torch.int64)
    with torch.no_grad():
        a = model.imagine(state, action, generator=torch.Generator().manual_seed(0))
        b = model.imagine(state, action, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.state["stoch"], b.state["stoch"])  # a sample, not the mode
    assert torch.equal(a.state["deter"], b.state["deter"])  # the deterministic path


def test_training_on_a_fixed_batch_lowers_the_reconstruction_and_the_reward_loss():
    model = make()
    batch = random_batch(VECTOR, spaces.Discrete(3), B=4, T=8)
    history = model_zoo.fit(model, batch, steps=60, lr=3e-3, log_every=20, progress=False)
    assert history[-1]["recon"] < 0.7 * history[0]["recon"]
    assert history[-1]["reward_loss"] < history[0]["reward_loss"]


@pytest.mark.parametrize(("field", "value"), [("stoch", 0), ("unimix", 1.0), ("free_nats", -1.0),
                                              ("reward_loss", "huber"), ("reward_bins", 1)])
def test_bad_config_is_a_clear_error(field, value):
    with pytest.raises(ValueError, match=f"Config.{field}"):
        Config(**{field: value})


def test_temperature_zero_imagines_the_mode_of_the_prior():
    model = make(stoch=16, classes=8, temperature=0.0)
    state = model.initial_state(8)
    action = torch.zeros(8, dtype=torch.int64)
    with torch.no_grad():
        a = model.imagine(state, action, generator=torch.Generator().manual_seed(0))
        b = model.imagine(state, action, generator=torch.Generator().manual_seed(1))
        _, prior = model.img_step(state["deter"], state["stoch"], model._action(action))
    assert torch.equal(a.state["stoch"], b.state["stoch"])
    assert torch.equal(a.state["stoch"].reshape(8, 16, 8).argmax(-1), prior.argmax(-1))


# --- holding the elements that never change within an episode ------------------------------


def episodes_batch(t: int = 6) -> Batch:
    """Two rows of a 3-element vector; row 0 holds two episodes (a new one starts at step 3), row 1 one.

    Element 0 is constant within each episode but differs between them; element 1 changes
    once, inside row 1's episode; element 2 changes only where row 0's second episode starts.
    """
    obs = torch.zeros(2, t, 3)
    obs[0, :3, 0], obs[0, 3:, 0], obs[1, :, 0] = 0.3, -0.5, 0.7
    obs[1, 4:, 1] = 0.25
    obs[0, 3:, 2] = 0.9
    first = torch.zeros(2, t, dtype=torch.bool)
    first[:, 0] = True
    first[0, 3] = True
    return Batch(obs=obs, action=torch.zeros(2, t, dtype=torch.int64), reward=torch.zeros(2, t),
                 terminated=torch.zeros(2, t, dtype=torch.bool), is_first=first)


def test_the_held_elements_are_learnt_from_changes_within_training_episodes():
    model = make()
    assert model.config.hold_constant_dims
    assert model.held.tolist() == [False, False, False]  # nothing seen yet: nothing held
    batch = episodes_batch()
    model.train()
    model.loss(batch)
    # element 0: constant within each episode (across episodes it differs); element 1 changed once;
    # element 2 changed only across an episode start
    assert model.held.tolist() == [True, False, True]
    assert int(model.vector_pairs) == 2 * 5 - 1  # consecutive pairs within one episode
    model.eval()
    changing = episodes_batch()
    changing.obs[1, 2:, 0] = -0.1  # a change within an episode, seen out of training: not recorded
    with torch.no_grad():
        model.loss(changing)
    assert model.held.tolist() == [True, False, True] and int(model.vector_pairs) == 9
    model.train()
    model.loss(changing)  # in training it is
    assert model.held.tolist() == [False, False, True]


def decoder_vector(model: RSSM, state) -> torch.Tensor:
    """What the decoder alone predicts for the vector part, as ``decode`` would clip it."""
    _, vector = model.decoder(torch.cat([state["deter"], state["stoch"]], dim=-1))
    return symexp(vector).clamp(-1.0, 1.0)


def observe_first(model: RSSM, obs):
    """The state after observing ``obs`` (2, ...) as the first step of two episodes."""
    no_action, first = torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.bool)
    return model.observe(model.initial_state(2), no_action, obs, first)


def imagine_steps(model: RSSM, state, steps: int = 5):
    generator = torch.Generator().manual_seed(0)
    for i in range(steps):
        state = model.imagine(state, torch.full((state["deter"].shape[0],), i % 3), generator=generator).state
    return state


def test_decode_returns_the_last_observed_value_of_held_elements_after_several_imagined_steps():
    model = make()
    model.loss(episodes_batch())  # holds elements 0 and 2
    model.eval()
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.8, 0.1, -0.4]])
    with torch.no_grad():
        state = observe_first(model, obs)
        assert torch.equal(state["last_obs"], obs)
        state = imagine_steps(model, state)
        assert torch.equal(state["last_obs"], obs)  # imagine carries it
        decoded, predicted = model.decode(state), decoder_vector(model, state)
    assert torch.equal(decoded[:, [0, 2]], obs[:, [0, 2]])
    assert torch.equal(decoded[:, 1], predicted[:, 1])  # the element that changes is the decoder's
    assert not torch.allclose(predicted[:, [0, 2]], obs[:, [0, 2]], atol=1e-3)  # so holding did something
    with torch.no_grad():  # a new observation (here a new episode in row 0 only) replaces the carried value
        newer = obs.clone()
        newer[0] = torch.tensor([-0.1, 0.5, 0.2])
        state = model.observe(state, torch.zeros(2, dtype=torch.int64), newer, torch.tensor([True, False]))
        state = imagine_steps(model, state, 3)
        assert torch.equal(model.decode(state)[:, [0, 2]], newer[:, [0, 2]])


def test_held_discrete_parts_decode_to_the_observed_value():
    space = spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
                         "pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "day": spaces.Discrete(3)})
    model = make(space)
    rng = np.random.default_rng(0)
    obs = {"image": torch.as_tensor(rng.integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)),
           "pos": torch.as_tensor(rng.uniform(-1, 1, (2, 4, 2)).astype(np.float32)),
           "day": torch.tensor([[0] * 4, [2] * 4])}  # constant within each episode
    first = torch.zeros(2, 4, dtype=torch.bool)
    first[:, 0] = True
    model.loss(Batch(obs=obs, action=torch.zeros(2, 4, dtype=torch.int64), reward=torch.zeros(2, 4),
                     terminated=torch.zeros(2, 4, dtype=torch.bool), is_first=first))
    assert list(model.spec.vectors) == ["day", "pos"]  # the Dict's sorted keys
    assert model.held.tolist() == [True, True, True, False, False]  # day's one-hot never changes; pos does
    model.eval()
    now = {k: v[:, 0] for k, v in obs.items()}
    now["day"] = torch.tensor([1, 2])
    with torch.no_grad():
        state = observe_first(model, now)
        decoded = model.decode(imagine_steps(model, state))
    assert decoded["day"].tolist() == [1, 2]


def test_the_held_elements_and_the_carried_value_survive_save_and_load(tmp_path):
    model = make()
    model.loss(episodes_batch())
    model.eval()
    assert {"vector_pairs", "vector_changed"} <= set(model.state_dict())
    loaded = model_zoo.load(model.save(tmp_path / "m"))
    assert torch.equal(loaded.held, model.held) and int(loaded.vector_pairs) == int(model.vector_pairs)
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.8, 0.1, -0.4]])
    with torch.no_grad():
        decoded = []
        for m in (model, loaded):
            state = observe_first(m, obs)
            decoded.append(m.decode(imagine_steps(m, state)))
    assert torch.equal(decoded[0], decoded[1])
    assert torch.equal(decoded[1][:, [0, 2]], obs[:, [0, 2]])


def test_a_checkpoint_saved_before_the_option_loads_as_it_was(tmp_path):
    old = make(hold_constant_dims=False, normalize_inputs=False)  # what a checkpoint from before both options holds
    directory = old.save(tmp_path / "m")
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text())
    del config["config"]["hold_constant_dims"], config["config"]["normalize_inputs"]  # saved before the fields existed
    config_file.write_text(json.dumps(config))
    loaded = model_zoo.load(directory)
    assert not loaded.config.hold_constant_dims and loaded.held.numel() == 3 and not loaded.held.any()
    assert not loaded.config.normalize_inputs and loaded.vector_stats is None
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), loaded.state_dict().values(), strict=True))
    config["config"]["hold_constant_dims"] = True  # a checkpoint that claims an option but lacks its buffers
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing tensors.*vector_changed"):
        model_zoo.load(directory)
    assert model_zoo.make("rssm", old.observation_space, old.action_space).config.hold_constant_dims  # new default


def test_with_the_flag_off_nothing_is_held():
    model = make(hold_constant_dims=False)
    model.loss(episodes_batch())
    model.eval()
    assert model.held.tolist() == [False, False, False]
    assert not {"vector_pairs", "vector_changed"} & set(model.state_dict())
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.8, 0.1, -0.4]])
    with torch.no_grad():
        state = observe_first(model, obs)
        assert set(state) == {"deter", "stoch"}
        state = imagine_steps(model, state)
        assert set(state) == {"deter", "stoch"}
        assert torch.equal(model.decode(state), decoder_vector(model, state))
    image_only = make(spaces.Box(0, 255, (64, 64, 3), np.uint8))  # no vector part: nothing to hold
    assert set(image_only.initial_state(2)) == {"deter", "stoch"} and image_only.held.numel() == 0


def test_input_normalization_statistics_are_learnt_in_training_and_survive_save_and_load(tmp_path):
    model = make()
    assert model.config.normalize_inputs
    batch = random_batch(VECTOR, DISCRETE, B=4, T=8)
    batch.obs = batch.obs * torch.tensor([0.1, 1.0, 0.5]) + torch.tensor([0.5, 0.0, -0.2])  # other means and spreads
    vectors = batch.obs.reshape(-1, 3)
    model_zoo.fit(model, batch, steps=3, lr=1e-3, progress=False)
    stats = model.vector_stats
    assert float(stats.count) == 3 * vectors.shape[0]  # one update per training step
    assert torch.allclose(stats.mean, vectors.mean(0), atol=1e-5)
    assert torch.allclose(stats.var, vectors.var(0, unbiased=False), atol=1e-5)
    model.eval()
    with torch.no_grad():
        model.loss(batch)  # out of training: no update
    assert float(stats.count) == 3 * vectors.shape[0]
    loaded = model_zoo.load(model.save(tmp_path / "m"))
    for name in ("count", "mean", "var"):
        assert torch.equal(getattr(loaded.vector_stats, name), getattr(stats, name))
    with torch.no_grad():  # the encoder reads the standardised vector, in the saved model too
        obs = batch.obs[:, 0]
        standardised = (obs - stats.mean) / stats.std
        assert torch.allclose(model.encoder(obs, model._vector_in(obs)), model.encoder(obs, standardised))
        assert not torch.allclose(model.encoder(obs), model.encoder(obs, standardised))
        assert torch.equal(loaded.encoder(obs, loaded._vector_in(obs)), model.encoder(obs, model._vector_in(obs)))


def test_without_input_normalization_the_encoder_reads_symlog_and_keeps_no_statistics():
    model = make(normalize_inputs=False)
    assert model.vector_stats is None and model._vector_in(torch.zeros(2, 3)) is None
    assert not any(name.startswith("vector_stats") for name in model.state_dict())
    image_only = make(spaces.Box(0, 255, (64, 64, 3), np.uint8))  # no vector part: nothing to normalise
    assert image_only.vector_stats is None


def test_loss_and_observe_read_the_vector_through_the_statistics(monkeypatch):
    model = make()
    batch = random_batch(VECTOR, DISCRETE, B=2, T=4)
    seen = []
    original = model._vector_in
    monkeypatch.setattr(model, "_vector_in", lambda obs: seen.append(obs.shape) or original(obs))
    model.loss(batch)
    with torch.no_grad():
        model.observe(model.initial_state(2), batch.action[:, 0], batch.obs[:, 0], batch.is_first[:, 0])
    assert seen == [(2, 4, 3), (2, 3)]


# --- delta_vector: an observation estimate in the state, moved by a change head -------------


@pytest.mark.parametrize("obs_space", [VECTOR, DICT], ids=["vector", "dict"])
def test_delta_vector_shapes_features_and_save_load(obs_space, tmp_path):
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    model = make(obs_space, action_space, delta_vector=True)
    batch = random_batch(obs_space, action_space, B=2, T=5)
    model.loss(batch)
    model.eval()
    vector_dim = model.spec.vector_dim
    assert model.feature_dim == TINY["hidden"] + TINY["stoch"] * TINY["classes"] + vector_dim
    assert {"delta_stats.mean", "delta_stats.var", "delta_stats.count"} <= set(model.state_dict())
    loaded = model_zoo.load(model.save(tmp_path / "m"))
    assert loaded.config.delta_vector
    outputs = []
    with torch.no_grad():
        for m in (model, loaded):
            state = m.observe(m.initial_state(2), batch.action[:, 0], batch.at(0).obs, batch.is_first[:, 0])
            out = m.imagine(state, batch.action[:, 1], generator=torch.Generator().manual_seed(3))
            assert out.state["last_obs"].shape == (2, vector_dim) and out.reward.shape == (2,)
            outputs.append((m.features(out.state), out.reward, m.decode(out.state)))
    (fa, ra, da), (fb, rb, db) = outputs
    assert fa.shape == (2, model.feature_dim) and torch.equal(fa, fb) and torch.equal(ra, rb)
    for key in da if isinstance(da, dict) else [None]:
        assert torch.equal(da[key], db[key]) if key is not None else torch.equal(da, db)


def test_the_change_head_moves_the_estimate_and_decode_returns_it():
    model = make(delta_vector=True)
    model.loss(drifting_batch())  # statistics of the changes; element 0 never changes in an episode: held
    model.eval()
    assert model.held.tolist() == [True, False, False]
    std = model.delta_stats.std
    assert torch.allclose(model.delta_stats.mean, torch.tensor([0.0, 0.1, -0.05]), atol=1e-6)
    with torch.no_grad():
        model.delta_head[-1].weight.zero_()
        model.delta_head[-1].bias.copy_(torch.tensor([1.0, 2.0, -1.0]))  # changes of (1, 2, -1) standard deviations
        obs = torch.tensor([[0.3, -0.2, 0.6], [-0.5, 0.1, -0.4]])
        state = observe_first(model, obs)
        assert torch.equal(model.decode(state), obs)  # a filtered state decodes to what it observed
        state = imagine_steps(model, state, steps=2)
    change = torch.tensor([0.0, 2.0, -1.0]) * std + model.delta_stats.mean
    expected = obs + 2 * change  # the held element stays put
    assert torch.allclose(state["last_obs"], expected, atol=1e-6)
    assert torch.allclose(model.decode(state), expected.clamp(-1.0, 1.0), atol=1e-6)


@pytest.mark.parametrize("delta_vector", [True, False])
def test_decode_runs_the_vector_decoder_only_when_its_output_is_used(delta_vector):
    model = make(delta_vector=delta_vector)
    model.eval()
    calls = []
    model.decoder.vector.register_forward_hook(lambda *_: calls.append(1))
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.5, 0.1, -0.4]])
    with torch.no_grad():
        state = imagine_steps(model, observe_first(model, obs), steps=1)
        decoded = model.decode(state)
    assert decoded.shape == obs.shape and decoded.dtype == torch.float32
    assert len(calls) == (0 if delta_vector else 1)  # with the estimate in the state, the decoder's vector is unused
    if delta_vector:
        assert torch.equal(decoded, state["last_obs"].clamp(-1.0, 1.0))


def test_delta_vector_learns_a_drift_that_the_imagined_estimate_follows():
    model = make(delta_vector=True)
    history = model_zoo.fit(model, drifting_batch(), steps=150, lr=3e-3, log_every=50, progress=False)
    assert history[-1]["delta_mse"] < 0.1 * history[0]["delta_mse"]
    model.eval()
    obs = torch.tensor([[0.3, -0.4, 0.2], [-0.5, -0.3, 0.15]])  # steps 0 and 1 of the drift
    with torch.no_grad():
        state = imagine_steps(model, observe_first(model, obs), steps=3)
    expected = obs + torch.tensor([0.0, 0.3, -0.15])
    assert torch.allclose(model.decode(state), expected, atol=0.03)


def test_without_delta_vector_the_features_and_heads_are_dreamers():
    model = make()
    assert not model.config.delta_vector and not hasattr(model, "delta_head")
    assert model.feature_dim == TINY["hidden"] + TINY["stoch"] * TINY["classes"]


def test_with_delta_vector_an_episodes_first_step_does_not_read_the_previous_episodes_observation():
    obs_space = spaces.Box(-5.0, 5.0, (2,), np.float32)
    torch.manual_seed(0)
    model = RSSM(obs_space, spaces.Discrete(2), Config(stoch=2, classes=2, hidden=8, units=8, vector_hidden=8,
                                                        delta_vector=True))
    seen = []
    model.cont_head.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    first = torch.tensor([[True, False, True, False]])  # a second episode starts at step 2
    obs = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [-3.0, 3.0], [-2.0, 3.0]]])
    batch = Batch(obs=obs, action=torch.zeros(1, 4, dtype=torch.int64), reward=torch.zeros(1, 4),
                  terminated=torch.tensor([[False, True, False, False]]), is_first=first)
    model.loss(batch)
    v = obs_space.shape[0]
    now, before = seen[-1][0, :, -2 * v : -v], seen[-1][0, :, -v:]  # (T, V) each: the estimate after and before
    assert torch.allclose(before[2], now[2])  # not step 1's observation, from the episode before
    assert torch.allclose(before[3], now[2])
