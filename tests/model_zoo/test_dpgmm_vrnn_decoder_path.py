"""dpgmm_vrnn decodes in training through imagination's path: the maps the attention schema predicts from h.

Issue 29, item 1: the decoder read the slot maps of the very frame it reconstructed, so information
reached the reconstruction without passing the KL and imagination decoded with other maps than
training did.
"""

from __future__ import annotations

import pytest
import torch

from model_zoo.nets import reconstruction_error
from tests.model_zoo.test_dpgmm_vrnn import TINY, make, make_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _DecoderTap:
    """Records the decoder's inputs and outputs of the last forward call."""

    def __init__(self, decoder):
        self.calls = []
        self.handle = decoder.register_forward_hook(lambda module, args, out: self.calls.append((args, out)))


def _recon(model, batch, seed=1):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.task_losses(batch)[1]["recon"]


def test_the_frames_own_maps_do_not_reach_the_reconstruction_given_z(monkeypatch):
    model = make()
    batch = make_batch(B=2, T=4)
    gen = torch.Generator().manual_seed(5)
    mean = torch.randn(TINY["z_dim"], generator=gen)

    def given_z(tokens, *_):  # the posterior, pinned: z no longer depends on the frame
        lead = tokens.shape[:-2] + (-1,)
        return mean.expand(lead), torch.full_like(mean, -1.0).expand(lead)

    def shuffled(tokens, h):  # other attention maps over the frame (and other tokens outside the posterior)
        maps = original(tokens.flip(-2) * 3.0, h)
        return maps.flip(-3)

    monkeypatch.setattr(model, "encode", given_z)
    original = model.slot_maps
    plain = _recon(model, batch)
    monkeypatch.setattr(model, "slot_maps", shuffled)
    torch.testing.assert_close(_recon(model, batch), plain, rtol=0, atol=0)


def test_training_decodes_with_the_maps_imagination_predicts_from_the_state():
    model = make()
    batch = make_batch(B=2, T=4)
    tap = _DecoderTap(model.decoder)
    torch.manual_seed(0)
    model.task_losses(batch)
    (x, maps), _ = tap.calls[-1]
    h = x[..., TINY["z_dim"]:]  # (B, T, H)
    expected = torch.softmax(model.predicted_maps_logits(h), dim=-2)  # what imagine decodes with
    torch.testing.assert_close(maps, expected)


def test_after_training_the_reconstruction_is_what_decoding_the_posterior_state_gives():
    """A few hundred steps of a tiny model: training's reconstruction is the imagination path's, exactly."""
    model = make("vector", balancer="sum")
    batch = make_batch("vector", B=4, T=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = float(_recon(model, batch))
    for _ in range(200):
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tap = _DecoderTap(model.decoder)
    recon = _recon(model, batch)
    assert float(recon) < before  # the path trains
    (x, _), _ = tap.calls[-1]
    z, h = x[..., : TINY["z_dim"]], x[..., TINY["z_dim"]:]
    with torch.no_grad():
        schema = torch.softmax(model.predicted_maps_logits(h), dim=-2)  # (B, T, S, N): imagination's maps
        images, vector = model.decoder(torch.cat([z, h], dim=-1), schema)
        obs = model.spec.to_torch(batch.obs, model.device)
        imagined, _ = reconstruction_error(model.spec, images, vector, obs, model.config.vector_weight)
    torch.testing.assert_close(recon, imagined.mean(), rtol=1e-6, atol=0)
    # and a filtered state holds the maps the decoder reads, the same imagine gives
    step = batch.at(0)
    with torch.no_grad():
        state = model.observe(model.initial_state(4), step.action, step.obs, step.is_first)
        head = torch.softmax(model.predicted_maps_logits(state["h"]), dim=-2).flatten(1)
    torch.testing.assert_close(state["maps"], head)


def test_a_checkpoint_whose_posterior_read_no_maps_loads_with_the_old_posterior(tmp_path):
    import json

    import model_zoo
    from model_zoo.checkpoint import WEIGHTS_FILE, load_tensors, save_tensors

    model = make()
    path = model.save(tmp_path / "ckpt")
    tensors, metadata = load_tensors(path / WEIGHTS_FILE)
    for key in ("map_posterior.weight", "map_posterior.bias"):  # saved before the posterior read the slot maps
        del tensors[key]
    save_tensors(path / WEIGHTS_FILE, tensors, metadata)
    config = json.loads((path / "config.json").read_text())
    del config["weights_sha256"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="weights_sha256"):
        loaded = model_zoo.load(path)
    assert not loaded.map_posterior.weight.any() and not loaded.map_posterior.bias.any()
    tokens, ctx = torch.randn(2, loaded.num_tokens, TINY["code_dim"]), torch.randn(2, TINY["context_dim"])
    maps = torch.softmax(torch.randn(2, TINY["slots"], loaded.num_tokens), dim=1)
    with torch.no_grad():
        mean, _ = loaded.encode(tokens, ctx, maps)
        old_mean, _ = loaded.posterior(torch.cat([tokens.flatten(-2), ctx], dim=-1)).chunk(2, dim=-1)
    torch.testing.assert_close(mean, old_mean)
