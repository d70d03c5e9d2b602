import torch

from clay_exp.hashing import hash_ints, hash_uniform, mix32


def test_mix32_is_a_bijection_on_a_sample():
    x = torch.arange(200_000, dtype=torch.int64)
    h = mix32(x)
    assert h.min() >= 0 and h.max() < 2**32
    assert torch.unique(h).numel() == x.numel()


def test_hash_is_deterministic_and_order_free():
    ids = torch.arange(1000)
    a = hash_uniform(3, 7, ids)
    b = hash_uniform(3, 7, ids.flip(0)).flip(0)
    assert torch.equal(a, b)
    assert not torch.equal(a, hash_uniform(4, 7, ids))  # the seed matters
    assert ((a > 0) & (a < 1)).all()


def test_hash_uniform_moments():
    u = hash_uniform(0, torch.arange(100_000), dtype=torch.float64)
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    # independence of neighbours
    assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.02


def test_large_keys_use_high_bits():
    k = torch.tensor([5, 5 + 2**40], dtype=torch.int64)
    h = hash_ints(1, k)
    assert h[0] != h[1]


def test_plain_int_keys_hash_like_tensor_keys():
    """Leading ints are folded in Python; the result must equal folding them as tensors."""
    ids = torch.randint(0, 2**40, (1000,))
    as_ints = hash_ints(7, 2**35 + 3, ids, 5)
    as_tensors = hash_ints(torch.tensor(7), torch.tensor(2**35 + 3), ids, torch.tensor(5))
    assert torch.equal(as_ints, as_tensors)
    assert hash_ints(1, 2).shape == () and int(hash_ints(1, 2)) == int(hash_ints(torch.tensor(1), 2))
