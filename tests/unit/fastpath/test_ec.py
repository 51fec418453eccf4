"""Erasure-coding kernel: both twins, an independent GF(2^8) reference, bad input."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nubis.fastpath import _ec_py as ref
from nubis.fastpath import ec

Kernels = Callable[[str], ModuleType]


def slow_mul(a: int, b: int) -> int:
    """Multiply in GF(2^8) mod x^8+x^4+x^3+x^2+1, bit by bit (no tables)."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
        b >>= 1
    return out


def slow_inv(a: int) -> int:
    return next(b for b in range(1, 256) if slow_mul(a, b) == 1)


def alive(frags: list[memoryview], lost: set[int]) -> dict[int, bytes]:
    return {i: bytes(f) for i, f in enumerate(frags) if i not in lost}


# --- the generator and the parity -------------------------------------------
@pytest.mark.parametrize(("k", "m"), [(1, 1), (4, 2), (8, 4), (10, 4), (1, 255), (255, 1)])
def test_generator_is_identity_over_cauchy_rows(kernels: Kernels, k: int, m: int) -> None:
    matrix = np.frombuffer(kernels("ec").Codec(k, m).matrix, dtype=np.uint8).reshape(k + m, k)
    assert (matrix[:k] == np.eye(k, dtype=np.uint8)).all()
    for i in (k, k + m - 1):
        assert [int(x) for x in matrix[i]] == [slow_inv(i ^ j) for j in range(k)]


def test_parity_matches_a_bitwise_reference(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    matrix = codec.matrix
    segment = bytes(range(256)) * 4 + b"tail"  # 1028 bytes: padded fragments of 257
    frags = codec.encode(segment)
    size = codec.fragment_size(len(segment))
    assert size == 257 and [len(f) for f in frags] == [257] * 6
    data = [segment[i * size:(i + 1) * size].ljust(size, b"\0") for i in range(4)]
    assert [bytes(f) for f in frags[:4]] == data
    for j in range(2):
        row = matrix[(4 + j) * 4:(5 + j) * 4]
        expected = bytes(
            slow_mul(row[0], data[0][b]) ^ slow_mul(row[1], data[1][b])
            ^ slow_mul(row[2], data[2][b]) ^ slow_mul(row[3], data[3][b])
            for b in range(size))
        assert bytes(frags[4 + j]) == expected


def test_gf_tables_match_the_bitwise_reference() -> None:
    for a in range(256):
        for b in (0, 1, 2, 3, 0x53, 0x8E, 0xCA, 0xFF):
            assert ref.gf_mul(a, b) == slow_mul(a, b)
    assert all(slow_mul(a, ref.gf_inv(a)) == 1 for a in range(1, 256))


# --- round trips --------------------------------------------------------------
@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 4095, 4096, 4097, 65536 + 7])
def test_every_erasure_pattern_of_4_2_decodes(kernels: Kernels, length: int) -> None:
    codec = kernels("ec").Codec(4, 2)
    segment = os.urandom(length)
    frags = codec.encode(segment)
    for nlost in range(3):
        for lost in itertools.combinations(range(6), nlost):
            got = codec.decode(alive(frags, set(lost)), length)
            assert isinstance(got, bytearray) and got == segment, lost


def test_every_erasure_pattern_of_8_4_decodes(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(8, 4)
    segment = os.urandom(8 * 64 + 5)
    frags = codec.encode(segment)
    for lost in itertools.combinations(range(12), 4):
        assert codec.decode(alive(frags, set(lost)), len(segment)) == segment, lost
        rebuilt = codec.reconstruct(alive(frags, set(lost)), list(lost))
        assert rebuilt == [bytes(frags[i]) for i in lost], lost


def test_a_pattern_vandermonde_cannot_decode_decodes(kernels: Kernels) -> None:
    # ISA-L's gf_gen_rs_matrix(15, 10) is singular on exactly these survivors.
    codec = kernels("ec").Codec(10, 5)
    segment = os.urandom(10_000)
    frags = codec.encode(segment)
    survivors = (0, 1, 2, 3, 5, 6, 8, 10, 11, 14)
    lost = set(range(15)) - set(survivors)
    assert codec.decode(alive(frags, lost), len(segment)) == segment


def test_reconstruct_rebuilds_data_and_parity(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(6, 3)
    frags = codec.encode(os.urandom(6000))
    have = alive(frags, {1, 7, 8})
    assert codec.reconstruct(have, [8, 1, 7]) == [bytes(frags[i]) for i in (8, 1, 7)]
    assert codec.reconstruct(have, [0]) == [bytes(frags[0])]  # present: recomputed
    assert codec.reconstruct(have, []) == []


def test_decode_needs_no_fragment_that_is_all_padding(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(8, 4)
    frags = codec.encode(b"0123456789")  # 2-byte fragments: data 5..7 are padding
    assert [bytes(f) for f in frags[5:8]] == [b"\0\0"] * 3
    assert codec.decode({i: frags[i] for i in range(5)}, 10) == b"0123456789"
    with pytest.raises(ValueError, match="need 8 fragments to decode, got 6"):
        codec.decode({i: frags[i] for i in range(1, 7)}, 10)


# --- buffers ----------------------------------------------------------------
def test_data_fragments_are_views_of_the_segment(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    segment = bytearray(os.urandom(4096))
    frags = codec.encode(segment)
    assert all(f.obj is segment for f in frags[:4])
    parity = bytearray(2 * 1024)
    again = codec.encode(segment, parity)
    assert all(f.obj is parity for f in again[4:])
    assert bytes(parity) == b"".join(bytes(f) for f in frags[4:])


def test_fresh_outputs_are_ordinary_bytearrays(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    segment = os.urandom(4 * 16384)  # page-sized fragments: placed apart from the sources
    frags = codec.encode(segment)
    assert [len(f) for f in frags] == [16384] * 6 and len(frags[4].obj) == 2 * 16384
    out = codec.decode(alive(frags, {0, 3}), len(segment))
    assert type(out) is bytearray and out == segment
    out.extend(b"more")
    del out[:10]
    assert bytes(out) == segment[10:] + b"more"
    rebuilt = codec.reconstruct(alive(frags, {0, 5}), [5, 0])
    assert [bytes(r) for r in rebuilt] == [bytes(frags[5]), bytes(frags[0])]
    rebuilt[0] += b"x"
    assert len(rebuilt[0]) == 16385


def test_any_contiguous_buffer_is_accepted(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(3, 2)
    words = np.arange(300, dtype=np.uint32)  # 1200 bytes, not a byte format
    frags = codec.encode(words)
    assert [len(f) for f in frags] == [400] * 5
    assert codec.decode(alive(frags, {0, 2}), 1200) == words.tobytes()
    have = {i: memoryview(bytes(f)) for i, f in enumerate(frags) if i != 1}
    assert codec.decode(have, 1200) == words.tobytes()


def test_decode_into_a_caller_buffer(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    segment = os.urandom(10_001)
    frags = codec.encode(segment)
    out = np.zeros(10_001, dtype=np.uint8)
    assert codec.decode_into(alive(frags, {3, 0}), 10_001, out) is None
    assert out.tobytes() == segment


def test_reconstruct_into_caller_buffers(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    frags = codec.encode(os.urandom(4000))
    out = [bytearray(1000), np.zeros(1000, dtype=np.uint8)]
    assert codec.reconstruct_into(alive(frags, {1, 4}), [4, 1], out) is None
    assert bytes(out[0]) == bytes(frags[4]) and out[1].tobytes() == bytes(frags[1])


def test_decode_tables_are_cached_per_pattern(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    frags = codec.encode(os.urandom(400))
    assert codec.cached_patterns == 0
    codec.decode(alive(frags, {4, 5}), 400)  # all data present: no tables
    assert codec.cached_patterns == 0
    for _ in range(3):
        codec.decode(alive(frags, {0, 1}), 400)
    assert codec.cached_patterns == 1
    for lost in itertools.permutations(range(6), 2):
        for wanted in itertools.permutations(range(6), 2):
            codec.reconstruct(alive(frags, set(lost)), list(wanted))
    assert codec.cached_patterns == ref.DECODE_CACHE_SIZE


def test_one_codec_serves_many_threads(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(8, 4)
    segments = [os.urandom(8 * 1024 + i) for i in range(8)]
    patterns = list(itertools.combinations(range(12), 4))[::20]
    failures: list[str] = []

    def work(seg: bytes) -> None:
        frags = codec.encode(seg)
        for lost in patterns:
            if codec.decode(alive(frags, set(lost)), len(seg)) != seg:
                failures.append(f"{len(seg)} {lost}")

    pool = [threading.Thread(target=work, args=(seg,)) for seg in segments]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert failures == []
    assert codec.cached_patterns == len(patterns)


# --- compiled vs twin (hypothesis) ------------------------------------------
@st.composite
def coding_cases(draw: st.DrawFn) -> tuple[int, int, bytes, list[int]]:
    k = draw(st.integers(1, 12))
    m = draw(st.integers(1, 6))
    data = draw(st.binary(max_size=3000))
    lost = draw(st.lists(st.integers(0, k + m - 1), max_size=m, unique=True))
    return k, m, data, lost


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coding_cases())
def test_selected_kernel_matches_the_twin(case: tuple[int, int, bytes, list[int]]) -> None:
    k, m, data, lost = case
    fast, twin = ec.Codec(k, m), ref.Codec(k, m)
    frags = fast.encode(data)
    assert [bytes(f) for f in frags] == [bytes(f) for f in twin.encode(data)]
    have = alive(frags, set(lost))
    assert fast.decode(have, len(data)) == twin.decode(have, len(data)) == data
    assert fast.reconstruct(have, lost) == twin.reconstruct(have, lost) \
        == [bytes(frags[i]) for i in lost]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.randoms(use_true_random=False))
def test_any_k_rows_of_the_generator_are_invertible(k: int, m: int, rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    matrix = np.frombuffer(ec.Codec(k, m).matrix, dtype=np.uint8).reshape(k + m, k)
    rows = sorted(rnd.sample(range(k + m), k))
    inverse = ref.gf_invert_matrix(matrix[rows])
    product = ref._gf_matmul(matrix[rows], inverse)
    assert (product == np.eye(k, dtype=np.uint8)).all()


# --- bad input --------------------------------------------------------------
@pytest.mark.parametrize(("k", "m"), [(0, 2), (2, 0), (-1, 1), (200, 57), (256, 1), (2**70, 1)])
def test_bad_k_m_rejected(kernels: Kernels, k: int, m: int) -> None:
    with pytest.raises(ValueError, match=r"k \+ m <= 256"):
        kernels("ec").Codec(k, m)


def test_k_m_must_be_integers(kernels: Kernels) -> None:
    with pytest.raises(TypeError):
        kernels("ec").Codec(4.0, 2)  # type: ignore[arg-type]


def test_largest_code_works(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(250, 6)
    segment = os.urandom(2500)
    frags = codec.encode(segment)
    lost = {0, 17, 100, 249, 250, 255}
    assert codec.decode(alive(frags, lost), 2500) == segment


@pytest.mark.parametrize("segment", ["text", 42, None, np.arange(20, dtype=np.uint8)[::2]])
def test_encode_rejects_non_buffers(kernels: Kernels, segment: object) -> None:
    with pytest.raises(TypeError, match="segment must be a contiguous bytes-like object"):
        kernels("ec").Codec(4, 2).encode(segment)


def test_encode_rejects_bad_parity_buffers(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    with pytest.raises(ValueError, match="parity is 99 bytes, expected 100"):
        codec.encode(bytes(200), bytearray(99))
    with pytest.raises(TypeError, match="parity must be a writable"):
        codec.encode(bytes(200), bytes(100))


def test_decode_rejects_bad_fragments(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    frags = alive(codec.encode(os.urandom(400)), {0})
    with pytest.raises(ValueError, match="fragment 3 is 99 bytes, expected 100"):
        codec.decode({**frags, 3: bytes(99)}, 400)
    with pytest.raises(IndexError, match=r"fragment index 6 out of range 0\.\.5"):
        codec.decode({**frags, 6: bytes(100)}, 400)
    with pytest.raises(IndexError, match="fragment index -1"):
        codec.decode({**frags, -1: bytes(100)}, 400)
    with pytest.raises(TypeError):
        codec.decode({**frags, "x": bytes(100)}, 400)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="fragment 2 must be a contiguous"):
        codec.decode({**frags, 2: "a" * 100}, 400)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="need 4 fragments to decode, got 3"):
        codec.decode({i: frags[i] for i in (1, 2, 5)}, 400)
    with pytest.raises(ValueError, match="fragment 1 is 100 bytes, expected 101"):
        codec.decode(frags, 401)  # the wrong segment length shows as a size mismatch


def test_decode_rejects_bad_lengths_and_outputs(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    frags = alive(codec.encode(os.urandom(400)), {5})
    with pytest.raises(ValueError, match="segment length must be >= 0"):
        codec.decode(frags, -1)
    with pytest.raises(ValueError, match="at most 2147483647"):
        codec.decode(frags, 2**40)  # refused before allocating anything
    with pytest.raises(ValueError, match="out is 399 bytes, expected 400"):
        codec.decode_into(frags, 400, bytearray(399))
    with pytest.raises(TypeError, match="out must be a writable"):
        codec.decode_into(frags, 400, bytes(400))


def test_reconstruct_rejects_bad_requests(kernels: Kernels) -> None:
    codec = kernels("ec").Codec(4, 2)
    frags = alive(codec.encode(os.urandom(400)), {0, 1})
    with pytest.raises(ValueError, match="must not repeat"):
        codec.reconstruct(frags, [0, 0])
    with pytest.raises(IndexError, match="fragment index 9"):
        codec.reconstruct(frags, [9])
    with pytest.raises(ValueError, match="need 4 fragments to decode, got 3"):
        codec.reconstruct({i: frags[i] for i in (2, 3, 4)}, [0])
    with pytest.raises(ValueError, match="need 4 fragments to decode, got 0"):
        codec.reconstruct({}, [0])
    with pytest.raises(ValueError, match="expected 100"):
        codec.reconstruct({**frags, 5: bytes(50)}, [0])
    with pytest.raises(ValueError, match="out has 1 buffers for 2 fragments to rebuild"):
        codec.reconstruct_into(frags, [0, 1], [bytearray(100)])
    with pytest.raises(ValueError, match=r"out\[1\] is 10 bytes, expected 100"):
        codec.reconstruct_into(frags, [0, 1], [bytearray(100), bytearray(10)])
    with pytest.raises(TypeError, match=r"out\[0\] must be a writable"):
        codec.reconstruct_into(frags, [0], [bytes(100)])
