"""dpgmm_vrnn and its parts: stick-breaking, the mixture KL, slot attention, the gradient balancers, the model."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from gymnasium import spaces
from torch import nn

import model_zoo
from model_zoo.base import Batch
from model_zoo.models.dpgmm_vrnn import DPGMMVRNN, TASKS, Config
from model_zoo.nets.balancing import GradientBalancer, balance, cone_projection, pcgrad, rgb, surrogate_loss
from model_zoo.nets.perceiver import CosineVectorQuantizer as VectorQuantizer
from model_zoo.nets.slots import SlotAttention
from model_zoo.nets.stick_breaking import (
    components_in_use,
    effective_components,
    gaussian_kl,
    log_stick_breaking,
    mixture_kl,
    stick_breaking,
    stick_kl,
)
from tests.model_zoo.fixtures import IMAGE, VECTOR, random_batch

TINY = dict(z_dim=6, components=4, codes=16, code_dim=8, latents=2, latent_dim=16, heads=2, context_dim=8,
            hidden=16, slots=3, slot_dim=8, slot_iters=1, depth=4, vector_hidden=16)
OBS_SPACES = {"dict": spaces.Dict({"image": IMAGE, "state": VECTOR}), "vector": VECTOR}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(obs: str = "dict", seed: int = 0, **overrides) -> DPGMMVRNN:
    torch.manual_seed(seed)
    return model_zoo.make("dpgmm_vrnn", OBS_SPACES[obs], spaces.Discrete(4), **{**TINY, **overrides})


def make_batch(obs: str = "dict", B: int = 2, T: int = 5, seed: int = 0) -> Batch:
    return random_batch(OBS_SPACES[obs], spaces.Discrete(4), B, T, seed)


# --- stick-breaking and the mixture ------------------------------------------------------


def test_stick_breaking_weights_are_positive_and_the_remainder_goes_to_the_truncation():
    fractions = torch.rand(64, 14, generator=torch.Generator().manual_seed(0))
    weights = stick_breaking(fractions)  # (64, 15)
    assert weights.shape == (64, 15)
    assert (weights > 0).all()
    broken = weights[:, :-1].sum(-1)
    assert (broken <= 1.0 + 1e-6).all()
    torch.testing.assert_close(weights[:, -1], 1.0 - broken)  # the rest of the stick: the last component
    torch.testing.assert_close(weights.sum(-1), torch.ones(64))
    torch.testing.assert_close(weights[:, -1], torch.prod(1.0 - fractions, dim=-1))
    # the k-th weight is the k-th fraction of what the earlier breaks left
    torch.testing.assert_close(weights[:, 2], fractions[:, 2] * (1 - fractions[:, 0]) * (1 - fractions[:, 1]))
    torch.testing.assert_close(log_stick_breaking(fractions).exp(), weights)


def test_stick_breaking_stays_finite_at_the_ends():
    log_w = log_stick_breaking(torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0]]))
    assert torch.isfinite(log_w).all()
    torch.testing.assert_close(log_w.exp().sum(-1), torch.ones(2))


def test_stick_kl_is_zero_at_the_dp_prior_and_positive_elsewhere():
    a, b = torch.ones(3, 4), torch.full((3, 4), 2.0)
    torch.testing.assert_close(stick_kl(a, b, alpha=2.0), torch.zeros(3))
    assert (stick_kl(torch.full((3, 4), 5.0), b, alpha=2.0) > 0).all()


def test_mixture_kl_matches_the_closed_form_with_one_component():
    gen = torch.Generator().manual_seed(0)
    mean, logstd = torch.randn(4, 3, generator=gen), 0.3 * torch.randn(4, 3, generator=gen)
    comp_mean, comp_logstd = torch.randn(4, 1, 3, generator=gen), 0.3 * torch.randn(1, 3, generator=gen)
    exact = gaussian_kl(mean, logstd, comp_mean[:, 0], comp_logstd[0])
    estimate = mixture_kl(mean, logstd, torch.zeros(4, 1), comp_mean, comp_logstd, samples=40_000, generator=gen)
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0.02)
    # K copies of the same component, whatever their weights, are the same single Gaussian
    weights = torch.log_softmax(torch.randn(4, 5, generator=gen), dim=-1)
    copies = mixture_kl(mean, logstd, weights, comp_mean.expand(4, 5, 3), comp_logstd.expand(5, 3), samples=40_000,
                        generator=gen)
    torch.testing.assert_close(copies, exact, atol=0.03, rtol=0.02)


def test_gaussian_kl_is_zero_for_equal_gaussians_and_grows_with_distance():
    mean, logstd = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(gaussian_kl(mean, logstd, mean, logstd), torch.zeros(5))
    assert (gaussian_kl(mean, logstd, mean + 1, logstd) > 0).all()


def test_usage_measures():
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.45, 0.05, 0.0]])
    assert components_in_use(weights, threshold=0.1).tolist() == [1, 4, 2]
    torch.testing.assert_close(effective_components(weights)[:2], torch.tensor([1.0, 4.0]))


# --- slot attention ---------------------------------------------------------------------


def test_slot_attention_is_permutation_equivariant_over_slots():
    torch.manual_seed(0)
    attention = SlotAttention(in_dim=6, slot_dim=8, iters=3)
    inputs, slots = torch.randn(2, 10, 6), torch.randn(2, 5, 8)
    out, maps = attention(inputs, slots)
    for perm in (torch.tensor([4, 2, 0, 1, 3]), torch.tensor([1, 0, 2, 3, 4])):
        out_p, maps_p = attention(inputs, slots[:, perm])
        torch.testing.assert_close(out_p, out[:, perm])
        torch.testing.assert_close(maps_p, maps[:, perm])
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 10))  # the slots share every position
    # and it is not trivially symmetric: different slots attend differently
    assert not torch.allclose(maps[:, 0], maps[:, 1])


def test_vector_quantizer_snaps_to_codes_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    vq = VectorQuantizer(codes=8, dim=4)
    x = torch.randn(3, 7, 4, requires_grad=True)
    out = vq(x)
    book = torch.nn.functional.normalize(vq.codebook, dim=-1)
    torch.testing.assert_close(out.tokens, book[out.codes])
    out.tokens.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert 1.0 <= float(VectorQuantizer.perplexity(out.codes, 8)) <= 8.0


# --- balancers ------------------------------------------------------------------------------


def cosines(grads: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    return grads @ update / (grads.norm(dim=1) * update.norm())


@pytest.mark.parametrize("method", ["sum", "pcgrad", "rgb"])
def test_agreeing_task_gradients_give_their_sum(method):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(40, generator=gen)
    grads = torch.stack([base * s + 0.3 * torch.randn(40, generator=gen) for s in (1.0, 2.0, 0.5)])  # (3, 40)
    assert (grads @ grads.t() > 0).all()  # no conflict
    torch.testing.assert_close(balance(grads, method), grads.sum(0))
    torch.testing.assert_close(balance(grads[:1], method), grads[0])  # one task: nothing to balance


@pytest.mark.parametrize("method", ["pcgrad", "rgb"])
@pytest.mark.parametrize("seed", range(5))
def test_a_conflicting_pair_is_balanced_without_conflict(method, seed):
    gen = torch.Generator().manual_seed(seed)
    g1 = torch.randn(30, generator=gen)
    g2 = -(2.0 + seed) * g1 + 0.5 * torch.randn(30, generator=gen)  # larger and nearly opposite
    grads = torch.stack([g1, g2])
    assert cosines(grads, grads.sum(0)).min() < 0  # the sum moves one task backwards
    update = balance(grads, method)
    assert (cosines(grads, update) >= -1e-6).all()


def test_rgb_keeps_each_task_gradient_norm_and_rotates_toward_consensus():
    g = torch.tensor([[3.0, 0.0], [-1.0, 1.0]])  # 135 degrees apart
    update, shares = rgb(g, lam=1.0, alpha_steps=20)
    # two rotated unit vectors, scaled by the original norms, that no longer conflict
    assert (g @ update >= -1e-6).all()
    assert update.norm() <= g.norm(dim=1).sum() + 1e-6
    torch.testing.assert_close(shares, g.norm(dim=1) / g.norm(dim=1).sum())  # first step: this step's shares
    # more rotation (lambda > 1) gives a more even update: closer to the consensus direction, here the
    # norm-weighted direction (0.45, 0.23) moved to the nearest one that conflicts with neither task
    wider, _ = rgb(g, lam=3.0, alpha_steps=20)
    consensus = torch.tensor([1.0, 1.0]) / math.sqrt(2.0)
    cos = lambda v: float(v @ consensus / v.norm())  # noqa: E731
    assert cos(wider) > cos(update)
    everything, _ = rgb(g, lam=100.0, alpha_steps=20)  # each task turned all the way onto the consensus
    torch.testing.assert_close(everything, g.norm(dim=1).sum() * consensus)


def test_rgb_consensus_is_the_summed_direction_when_that_conflicts_with_no_task():
    g = torch.tensor([[4.0, 1.0, 0.0], [-0.5, 1.0, 0.0], [0.0, 0.5, 1.0]])  # tasks 0 and 1 conflict
    total = g.sum(0)
    assert (g @ total > 0).all()
    everything, _ = rgb(g, mu=0.0, lam=100.0, alpha_steps=20)  # the conflicting two turned onto the consensus
    torch.testing.assert_close(everything, g[:2].norm(dim=1).sum() * total / total.norm() + g[2])


@pytest.mark.parametrize("seed", range(3))
def test_rgb_update_conflicts_with_no_task_for_many_tasks_of_very_different_sizes(seed):
    gen = torch.Generator().manual_seed(seed)
    worst = []
    for k in (3, 4, 5):
        grads = torch.randn(k, 20, generator=gen) * torch.logspace(0, 3, k)[:, None]  # norms 1 to 1000
        grads[:-1] *= -torch.sign(grads[:-1] @ grads[-1])[:, None]  # every smaller task against the largest
        assert cosines(grads, grads.sum(0)).min() < 0  # the sum moves a small task backwards
        worst.append(float(cosines(grads, balance(grads, "rgb")).min()))
    assert min(worst) >= -1e-6, worst


def test_cone_projection_finds_the_nearest_direction_that_conflicts_with_no_task():
    u = torch.tensor([[1.0, 0.0], [-1.0, 1.0]]) / torch.tensor([[1.0], [math.sqrt(2.0)]])
    coords = torch.linalg.solve(u.t(), torch.tensor([2.0, 1.0]))  # x = (2, 1) conflicts with u[1]
    nearest = cone_projection(u @ u.t(), coords) @ u
    torch.testing.assert_close(nearest, torch.tensor([1.5, 1.5]))  # onto the edge x2 = x1
    # nearly parallel tasks (an ill-conditioned Gram matrix): still exact
    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(1, 40, generator=gen) + 0.05 * torch.randn(5, 40, generator=gen)
    grads[:2] *= -1
    u = grads / grads.norm(dim=1, keepdim=True)
    gram = (u @ u.t()).double()
    nearest = cone_projection(gram, torch.logspace(0, 4, 5, dtype=torch.float64))  # norm shares 1 to 10^4
    assert (gram @ nearest >= -1e-9).all()


def test_rgb_with_no_direction_free_of_conflict_does_not_move():
    g = torch.tensor([[2.0, 0.0], [-1.0, 0.0]])  # exactly opposite: any step undoes one of them
    torch.testing.assert_close(balance(g, "rgb"), torch.zeros(2))


def test_rgb_momentum_smooths_the_task_shares_of_the_consensus():
    balancer = GradientBalancer("rgb", num_tasks=2, mu=0.9)
    balancer(torch.tensor([[1.0, 0.0], [-0.9, 0.5]]))
    first = balancer.momentum.clone()
    torch.testing.assert_close(first.sum(), torch.tensor(1.0))
    balancer(torch.tensor([[0.0, 4.0], [0.5, -0.9]]))  # the first task's share jumps to 0.78: the momentum moves 10%
    now = torch.tensor([4.0, math.hypot(0.5, 0.9)])
    torch.testing.assert_close(balancer.momentum, 0.9 * first + 0.1 * now / now.sum())


def test_pcgrad_projects_each_conflicting_gradient_on_the_normal_plane():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    update = pcgrad(g)
    # g1 loses its component along g2, g2 its component along g1
    torch.testing.assert_close(update, torch.tensor([0.5, 0.5]) + torch.tensor([0.0, 1.0]))


def test_unknown_balancer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown balancer 'adam'"):
        balance(torch.zeros(2, 3), "adam")
    with pytest.raises(ValueError, match="balancer must be one of"):
        Config(balancer="mgda")


def test_surrogate_loss_has_the_summed_value_and_the_balanced_gradient():
    torch.manual_seed(0)
    trunk, head_a, head_b = nn.Linear(3, 4), nn.Linear(4, 1), nn.Linear(4, 1)
    x = torch.randn(8, 3)
    feats = trunk(x)
    losses = [head_a(feats).square().mean(), (head_b(feats) - 5.0).square().mean()]
    params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    shared = [True, True, False, False, False, False]
    per_task = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for loss in losses]
    balancer = GradientBalancer("pcgrad", num_tasks=2)
    value, stats = surrogate_loss(losses, params, shared, balancer)
    torch.testing.assert_close(value, losses[0] + losses[1])
    value.backward()
    G = torch.stack([torch.cat([g[0].reshape(-1), g[1].reshape(-1)]) for g in per_task])  # (2, 16)
    expected = pcgrad(G)
    torch.testing.assert_close(torch.cat([trunk.weight.grad.reshape(-1), trunk.bias.grad]), expected)
    torch.testing.assert_close(head_a.weight.grad, per_task[0][2])  # task-specific: that task's gradient
    torch.testing.assert_close(head_b.bias.grad, per_task[1][5])
    assert -1.0 <= stats["grad_conflict"] <= 1.0 and stats["update_task_cos"] >= -1e-6


# --- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("balancer, shifted", [("rgb", False), ("pcgrad", False), ("sum", False), ("rgb", True)])
def test_loss_reports_every_task_and_gives_every_parameter_a_gradient(balancer, shifted):
    model = make(balancer=balancer, state_dependent_means=shifted)
    assert (model.prior.shift is not None) == shifted
    batch = make_batch()
    torch.manual_seed(1)
    loss, metrics = model.loss(batch)
    assert set(TASKS) <= set(metrics)
    assert {"recon", "kl", "stick_kl", "vq_perplexity", "components_in_use"} <= set(metrics)
    summed = sum(w * metrics[t] for w, t in zip(model.config.task_weights, TASKS, strict=True))
    torch.testing.assert_close(float(loss.detach()), summed, rtol=1e-5, atol=1e-5)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.slot_attention.to_q.weight.grad.abs().sum() > 0  # the decoder trains the slots
    with torch.no_grad():
        torch.manual_seed(1)
        plain, _ = model.loss(batch)  # no balancing without gradients: the plain sum, same value
    torch.testing.assert_close(plain, loss.detach())


def test_rgb_and_sum_differ_only_on_the_shared_parameters():
    batch = make_batch()
    grads = {}
    for balancer in ("sum", "rgb"):
        model = make(balancer=balancer)
        torch.manual_seed(1)
        model.loss(batch)[0].backward()
        grads[balancer] = {name: p.grad.clone() for name, p in model.named_parameters()}
    shared = ("tokenizer.", "perceiver.", "posterior.", "dynamics.")
    for name, g in grads["sum"].items():
        if not name.startswith(shared):
            torch.testing.assert_close(grads["rgb"][name], g, msg=name)
    assert any(not torch.allclose(grads["rgb"][n], g) for n, g in grads["sum"].items() if n.startswith(shared))


def test_state_dependent_means_move_the_components_with_the_recurrent_state():
    h = torch.randn(3, TINY["hidden"])
    fixed, _ = make(state_dependent_means=False).prior.components(h)
    moved, _ = make(state_dependent_means=True).prior.components(h)
    assert fixed.shape == moved.shape == (3, TINY["components"], TINY["z_dim"])
    assert torch.equal(fixed[0], fixed[1])  # the same components whatever the state
    assert not torch.allclose(moved[0], moved[1])
    torch.testing.assert_close(moved[0] - moved[1], (moved[0] - moved[1])[:1].expand_as(moved[0]))  # all together


def test_observe_and_imagine_keep_the_state_shapes_and_maps_are_distributions():
    model = make()
    B = 3
    batch = make_batch(B=B, T=2)
    state = model.observe(model.initial_state(B), batch.action[:, 0], batch.at(0).obs, batch.is_first[:, 0])
    S, N = model.config.slots, model.num_tokens
    assert N == 64 + 5
    maps = state["maps"].reshape(B, S, N)
    torch.testing.assert_close(maps.sum(1), torch.ones(B, N))
    out = model.imagine(state, torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert {k: v.shape for k, v in out.state.items()} == {k: v.shape for k, v in state.items()}
    torch.testing.assert_close(out.state["maps"].reshape(B, S, N).sum(1), torch.ones(B, N))


def test_the_decoder_reads_the_attention_maps():
    model = make()
    state = {k: torch.randn_like(v) for k, v in model.initial_state(2).items()}
    S, N = model.config.slots, model.num_tokens
    state["maps"] = torch.softmax(torch.randn(2, S, N), dim=1).flatten(1)
    other = dict(state, maps=torch.softmax(5 * torch.randn(2, S, N), dim=1).flatten(1))
    assert not torch.equal(model.decode(state)["image"], model.decode(other)["image"])


def test_observe_resets_the_recurrent_state_at_episode_starts():
    model = make()
    batch = make_batch(B=2, T=1)
    obs, first = batch.at(0).obs, torch.ones(2, dtype=torch.bool)
    fresh = model.observe(model.initial_state(2), batch.action[:, 0], obs, first)
    history = {k: torch.randn_like(v) for k, v in model.initial_state(2).items()}
    after = model.observe(history, batch.action[:, 0], obs, first)
    for key in fresh:
        torch.testing.assert_close(after[key], fresh[key])
    moved = model.observe(history, batch.action[:, 0], obs, ~first)
    assert not torch.equal(moved["h"], fresh["h"])


def test_imagine_samples_the_mixture_prior():
    model = make(temperature=1.0)
    n = 4000
    h = torch.randn(1, model.config.hidden).expand(n, -1)
    state = dict(model.initial_state(n), h=h, c=torch.zeros_like(h))
    action = torch.zeros(n, dtype=torch.long)
    a = model.imagine(state, action, generator=torch.Generator().manual_seed(3))
    b = model.imagine(state, action, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.state["z"], b.state["z"])
    # the draws pick components in proportion to the prior weights at the new state
    usage = model.usage(a.state)
    picked = usage.responsibilities.argmax(-1)
    observed = torch.bincount(picked, minlength=model.config.components).float() / n
    torch.testing.assert_close(observed, usage.weights[0], atol=0.06, rtol=0.0)
    greedy = dataclasses.replace(model.config, temperature=0.0)
    model.config = greedy
    z0 = model.imagine(state, action).state["z"]
    assert torch.equal(z0, z0[:1].expand_as(z0))  # tau = 0: the most likely component's mean, no noise


def test_evaluation_gives_the_mixture_columns():
    model = make("vector")
    batch = make_batch("vector", B=4, T=6)
    result = model_zoo.evaluate(model, batch, horizons=(1, 2), context=3, speed_batch=8, speed_seconds=0.01)
    row = result.as_dict()
    assert 1 <= row["components_in_use"] <= model.config.components
    assert 1 <= row["components_effective"] <= model.config.components
    assert 0 < row["responsibility_max"] <= 1


def test_vector_only_space_has_no_convolutions():
    model = make("vector")
    assert not any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())
    assert model.num_tokens == 5


def test_a_checkpoint_with_the_old_rgb_state_loads_with_fresh_shares(tmp_path):
    import json

    from model_zoo.checkpoint import WEIGHTS_FILE, load_tensors, save_tensors

    model = make()
    path = model.save(tmp_path / "ckpt")
    tensors, metadata = load_tensors(path / WEIGHTS_FILE)
    tensors["balancer.momentum"] = torch.randn(1000)  # the old state: a direction over the shared parameters
    save_tensors(path / WEIGHTS_FILE, tensors, metadata)
    config = json.loads((path / "config.json").read_text())
    del config["weights_sha256"]  # a checkpoint that old records no hash of its weights
    (path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="predates the task-share momentum"):
        loaded = model_zoo.load(path)
    assert torch.equal(loaded.balancer.momentum, torch.zeros(len(TASKS)))
    assert torch.equal(loaded.heads[0].weight, model.heads[0].weight)


def test_save_load_round_trip_keeps_the_balancer_state(tmp_path):
    model = make()
    batch = make_batch()
    model.loss(batch)[0].backward()  # moves RGB's consensus momentum
    assert model.balancer.momentum.abs().sum() > 0
    loaded = model_zoo.load(model.save(tmp_path / "ckpt"))
    assert loaded.config == model.config and isinstance(loaded, DPGMMVRNN)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    torch.manual_seed(0)
    loss_a = model.loss(batch)[0]
    torch.manual_seed(0)
    loss_b = loaded.loss(batch)[0]
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    with torch.no_grad():
        state_a = model.observe(model.initial_state(2), batch.action[:, 0], batch.at(0).obs, batch.is_first[:, 0])
        state_b = loaded.observe(loaded.initial_state(2), batch.action[:, 0], batch.at(0).obs, batch.is_first[:, 0])
        out_a = model.imagine(state_a, batch.action[:, 1], generator=torch.Generator().manual_seed(1))
        out_b = loaded.imagine(state_b, batch.action[:, 1], generator=torch.Generator().manual_seed(1))
    for key in out_a.state:
        assert torch.equal(out_a.state[key], out_b.state[key]), key
    assert torch.equal(model.decode(out_a.state)["image"], loaded.decode(out_b.state)["image"])


@pytest.mark.parametrize(("field", "value", "match"), [
    ("z_dim", 0, "z_dim"), ("components", 0, "components"), ("latent_dim", 10, "divisible by heads"),
    ("rgb_mu", 1.0, "rgb_mu"), ("dp_alpha", 0.0, "dp_alpha"), ("task_weights", (1.0, 1.0), "task_weights"),
])
def test_config_is_validated(field, value, match):
    with pytest.raises(ValueError, match=match):
        Config(**{field: value})


def test_config_is_frozen_and_one_component_works():
    model = make(components=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.z_dim = 3
    loss, metrics = model.loss(make_batch())
    assert torch.isfinite(loss) and metrics["components_in_use"] == 1.0


def test_usage_by_context_averages_the_prior_weights_per_causal_value():
    model = make("vector")
    batch = make_batch("vector", B=3, T=4)
    batch.causal = torch.zeros(3, 4, 7)
    batch.causal[1:, :, 4] = 1.0  # rows 1 and 2: gameday
    usage = model.usage_by_context(batch, column=4)
    weights = model.sequence_usage(batch).weights  # (B, T, K)
    assert sorted(usage) == [0.0, 1.0]
    torch.testing.assert_close(usage[0.0], weights[0].mean(0))
    torch.testing.assert_close(usage[1.0], weights[1:].flatten(0, 1).mean(0))
    batch.causal = None
    with pytest.raises(ValueError, match="causal codes"):
        model.usage_by_context(batch, column=4)


def test_mean_task_losses_are_seeded_and_sum_to_the_loss():
    model = make("vector")
    batches = [make_batch("vector", seed=s) for s in range(2)]
    a, b = model.mean_task_losses(batches, seed=3), model.mean_task_losses(batches, seed=3)
    assert a == b and set(a) == {*TASKS, "loss"}
    assert a["loss"] == pytest.approx(sum(w * a[t] for w, t in zip(model.config.task_weights, TASKS, strict=True)))
