"""HopPolicy: shapes, causality, padding, right-aligned time, the sparse PointNet
backward, parameter groups, and that it can fit a toy batch; for the relative
variant, incremental stepping with resets against the banded forward, and that
the default variant is unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hop_robot.embodiment.spec import NUM_JOINTS
from hop_train.model import HopPolicy, PointNet, masked_l1

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and immune to other processes
    holding the second core (OpenMP barriers then stall for 100s of ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


P = 20  # fewer points than the paper's 100 keeps the tests fast; the PointNet takes any P


def make_inputs(b=3, t=16, p=P, seed=0):
    g = torch.Generator().manual_seed(seed)
    proprio = torch.rand(b, t, NUM_JOINTS, generator=g) * 2 - 1
    points = torch.rand(b, t, p, 3, generator=g) * 0.3 + torch.tensor([0.5, -0.15, 0.0])
    return proprio, points


@pytest.fixture(scope="module", params=["window", "relative"])
def model(request):
    """Both position schemes: every window property below holds for each."""
    torch.manual_seed(0)
    return HopPolicy(num_points=P, positions=request.param).eval()


def test_shapes(model):
    for t in (16, 5, 1):
        proprio, points = make_inputs(t=t)
        out = model(proprio, points, torch.ones(3, t, dtype=torch.bool))
        assert out.shape == (3, t, NUM_JOINTS)
        assert model(proprio, points).shape == (3, t, NUM_JOINTS)  # mask=None: all valid
    assert model.encode_points(points).shape == (3, 1, 192)
    if model.relative:  # banded attention takes any length
        assert model(*make_inputs(t=17)).shape == (3, 17, NUM_JOINTS)
    else:
        with pytest.raises(ValueError, match="context"):
            model(*make_inputs(t=17))


def test_causal(model):
    proprio, points = make_inputs()
    mask = torch.ones(3, 16, dtype=torch.bool)
    mask[1, :4] = False
    with torch.no_grad():
        base = model(proprio, points, mask)
        for t in (0, 7, 14):
            p2, x2 = proprio.clone(), points.clone()
            p2[:, t + 1 :] += 5.0 * torch.randn_like(p2[:, t + 1 :])
            x2[:, t + 1 :] = torch.rand_like(x2[:, t + 1 :])
            out = model(p2, x2, mask)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-5, rtol=0)
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])
        # The action of step t sees step t's proprioception (it is read from the points token).
        p2 = proprio.clone()
        p2[:, 7] += 1.0
        assert not torch.allclose(model(p2, points, mask)[:, 7], base[:, 7])


def test_padded_steps_do_not_influence_valid_ones(model):
    proprio, points = make_inputs(b=4)
    mask = torch.ones(4, 16, dtype=torch.bool)
    for i, n_pad in enumerate((0, 1, 9, 15)):
        mask[i, :n_pad] = False
    with torch.no_grad():
        base = model(proprio, points, mask)
        assert torch.isfinite(base).all()  # padded rows too: no all-masked softmax
        p2, x2 = proprio.clone(), points.clone()
        p2[~mask] = 100.0 * torch.randn_like(p2[~mask])
        x2[~mask] = 10.0 * torch.randn_like(x2[~mask])
        out = model(p2, x2, mask)
    torch.testing.assert_close(out[mask], base[mask], atol=1e-5, rtol=0)


def test_short_window_equals_left_padded_window(model):
    """Timesteps are right-aligned, so a T=5 window and the same 5 steps
    left-padded to 16 give the same actions: the runner needs no padding."""
    proprio, points = make_inputs()
    mask = torch.ones(3, 16, dtype=torch.bool)
    mask[:, :11] = False
    with torch.no_grad():
        padded = model(proprio, points, mask)[:, 11:]
        short = model(proprio[:, 11:], points[:, 11:], torch.ones(3, 5, dtype=torch.bool))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=0)


def test_last_step_only_matches_full(model):
    proprio, points = make_inputs()
    mask = torch.ones(3, 16, dtype=torch.bool)
    mask[2, :6] = False
    with torch.no_grad():
        tokens = model.encode_points(points)
        for t in (16, 3, 1):
            full = model.forward_tokens(proprio[:, -t:], tokens[:, -t:], mask[:, -t:])
            last = model.forward_tokens(proprio[:, -t:], tokens[:, -t:], mask[:, -t:], last_step_only=True)
            torch.testing.assert_close(last, full[:, -1:], atol=1e-5, rtol=0)


def test_action_tanh_bounds_actions():
    torch.manual_seed(0)
    m = HopPolicy(num_points=P, action_tanh=True)
    with torch.no_grad():
        m.action_head.bias.fill_(50.0)
        out = m(*make_inputs())
    assert out.abs().max() <= 1.0


def _dense_pointnet(pn: PointNet, points: torch.Tensor) -> torch.Tensor:
    h = F.elu(pn.fc2(F.elu(pn.fc1(points))))
    return pn.fc3(h).max(dim=-2).values


def test_sparse_pointnet_backward_matches_autograd():
    torch.manual_seed(0)
    pn = PointNet(width=32, chunk_points=64)  # several chunks
    points = torch.rand(2, 5, 30, 3)
    weight = torch.randn(2, 5, 32)
    grads = []
    for fn in (pn, lambda x: _dense_pointnet(pn, x)):
        pn.zero_grad()
        out = fn(points)
        (out * weight).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in pn.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = grads
    torch.testing.assert_close(out_a, out_b, atol=1e-6, rtol=0)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-4)
    # No-grad and grad paths give the same tokens.
    with torch.no_grad():
        torch.testing.assert_close(pn(points), out_a, atol=1e-6, rtol=0)


def test_param_groups():
    model = HopPolicy(num_points=P)
    decay, no_decay = model.param_groups(0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for p in decay["params"]] + [id(p) for p in no_decay["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    decay_ids = {id(p) for p in decay["params"]}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            expect = isinstance(module, nn.Linear) and name == "weight"
            assert (id(p) in decay_ids) == expect, (type(module).__name__, name)
    assert id(model.embed_timestep.weight) not in decay_ids
    assert HopPolicy(num_points=P, positions="relative").embed_timestep is None
    assert id(model.embed_ln.weight) not in decay_ids and id(model.blocks[0].fc.bias) not in decay_ids


def test_gpt2_init():
    model = HopPolicy(num_points=P)
    assert model.blocks[0].ln_1.weight.eq(1).all() and model.blocks[0].fc.bias.eq(0).all()
    assert abs(model.blocks[0].fc.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].proj.weight.std().item() - 0.02 / 8**0.5) < 0.001  # 1/sqrt(2 * 4 layers)


def test_masked_l1_ignores_padding():
    pred, target = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    target[0, :2] = 100.0
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[0, :2] = False
    assert masked_l1(pred, target, mask).item() == pytest.approx(1.0)
    assert masked_l1(pred, target).item() > 1.0


def test_overfits_a_toy_batch():
    torch.manual_seed(0)
    model = HopPolicy(num_points=P, num_layers=2).train()
    proprio, points = make_inputs(b=4, t=8)
    target = torch.tanh(proprio.roll(1, dims=-1) * 2)  # a fixed function of the inputs
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[0, :3] = False
    opt = torch.optim.AdamW(model.param_groups(1e-2), lr=1e-3)
    losses = []
    for _ in range(60):
        loss = masked_l1(model(proprio, points, mask), target, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]


# ----------------------------------------------------------------- the two position schemes
def test_default_variant_is_unchanged():
    """``positions="window"`` is the default and computes what it did before the
    option existed (values recorded from that code): old checkpoints and
    exports keep their keys and behaviour."""
    torch.manual_seed(0)
    m = HopPolicy(width=32, num_layers=2, num_heads=2, num_points=20).eval()
    assert m.positions == "window" and m.receptive_field == m.context
    assert "embed_timestep.weight" in m.state_dict() and not any("slopes" in k for k in m.state_dict())
    g = torch.Generator().manual_seed(0)
    proprio = torch.rand(3, 16, 23, generator=g) * 2 - 1
    points = torch.rand(3, 16, 20, 3, generator=g)
    mask = torch.ones(3, 16, dtype=torch.bool)
    mask[1, :5] = False
    with torch.no_grad():
        full = m(proprio, points, mask)
        last = m.forward_tokens(proprio[:, 4:], m.encode_points(points[:, 4:]), mask[:, 4:], last_step_only=True)
    recorded = torch.tensor([0.10953439027070999, -0.0070073651149868965, -0.003217646386474371, 0.11783848702907562])
    torch.testing.assert_close(full[0, -1, :4], recorded, atol=1e-6, rtol=0)
    assert float(full.sum()) == pytest.approx(34.4466438293457, abs=1e-4)
    assert float(last.sum()) == pytest.approx(2.1282196044921875, abs=1e-4)
    with pytest.raises(RuntimeError, match="relative"):
        m.init_cache(2)


def _relative_model(**kwargs):
    torch.manual_seed(0)
    m = HopPolicy(width=32, num_layers=3, num_heads=2, context=4, num_points=P, positions="relative", **kwargs).eval()
    with torch.no_grad():  # weights far from GPT-2's small init, so distant steps matter
        for p in m.parameters():
            p.normal_(0.0, 0.3)
    return m


def _episodes(reset: torch.Tensor):
    """(env, first, end) of every episode in a (N, S) reset pattern (reset[:, 0] True)."""
    for i, row in enumerate(reset):
        starts = row.nonzero().flatten().tolist() + [row.numel()]
        yield from ((i, a, b) for a, b in zip(starts[:-1], starts[1:]))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_incremental_step_equals_banded_forward_over_each_episode():
    """``step`` with per-env resets at different steps equals ``forward_tokens``
    over each whole episode, eagerly and scripted; a window of
    ``receptive_field`` steps equals it too, a window of ``context`` steps not."""
    m = _relative_model()
    n, s = 5, 30
    g = torch.Generator().manual_seed(1)
    proprio, tokens = torch.randn(n, s, NUM_JOINTS, generator=g), torch.randn(n, s, 32, generator=g)
    reset = torch.zeros(n, s, dtype=torch.bool)
    reset[:, 0] = True
    reset[1, 7] = reset[2, 3] = reset[2, 20] = reset[3, 1] = reset[3, 2] = reset[4, 29] = True
    scripted = torch.jit.script(m)
    with torch.no_grad():
        outs = []
        for policy in (m, scripted):
            cache = policy.init_cache(n)
            outs.append(torch.stack([policy.step(cache, proprio[:, k], tokens[:, k], reset[:, k]) for k in range(s)], 1))
        for i, a, b in _episodes(reset):
            expected = m.forward_tokens(proprio[i : i + 1, a:b], tokens[i : i + 1, a:b])[0]
            for out in outs:
                torch.testing.assert_close(out[i, a:b], expected, atol=1e-5, rtol=0)
        k, rf = 25, m.receptive_field  # env 0: one episode of 30 steps
        assert rf == 3 * 3 + 1
        window = lambda t: m.forward_tokens(proprio[:1, k - t + 1 : k + 1], tokens[:1, k - t + 1 : k + 1], last_step_only=True)  # noqa: E731
        torch.testing.assert_close(window(rf)[0, 0], outs[0][0, k], atol=1e-5, rtol=0)
        assert (window(m.context)[0, 0] - outs[0][0, k]).abs().max() > 1e-3


def test_relative_attention_is_banded():
    """A query at step t sees steps t - context + 1 .. t only: with one layer a
    change at step 7 reaches step 10's action (within its band) but not step 11's."""
    torch.manual_seed(0)
    one = HopPolicy(width=32, num_layers=1, num_heads=2, context=4, num_points=P, positions="relative").eval()
    proprio, points = make_inputs(b=2, t=12)
    with torch.no_grad():
        tokens = one.encode_points(points)
        base = one.forward_tokens(proprio, tokens)
        far = proprio.clone()
        far[:, 7] += 3.0
        out = one.forward_tokens(far, tokens)
    torch.testing.assert_close(out[:, 11], base[:, 11], atol=1e-6, rtol=0)
    assert not torch.allclose(out[:, 10], base[:, 10])
