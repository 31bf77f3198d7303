"""Fuzzing the three readers with hypothesis: catalogs (CF4/EDD text tables), profiles (YAML)
and mock shards (HDF5 + manifest.json), and the CLI commands that reach them
(``zoa catalog``, ``zoa profile show``, ``zoa shards check``).

Every kind of bad input must raise a :class:`zoa_lib.errors.ZoaError` (CatalogError,
ProfileError, ShardError) whose message is one line and names the file and, where there is
one, the line, column, key or dataset — never a raw KeyError, OSError, UnicodeDecodeError,
h5py or numpy error. Valid random input must read (the readers do not just reject
everything). Through the CLI: exit status 2, one line on stderr, no traceback unless
``--debug``; and a failing command leaves what is already written byte for byte.

Complements the hand-written cases of test_catalogs.py and test_config.py. Deterministic:
``derandomize=True``. Tables written here come from a synthetic catalog; none is
Cosmicflows-4 data.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from zoa_lib import config
from zoa_lib.commands.options import parse_overrides
from zoa_lib.config import ProfileError, load_profile
from zoa_lib.errors import ZoaError
from zoa_lib.survey import catalog_files, catalogs, distances, mock_set, shards, sky
from zoa_lib.survey.catalog_files import write_cf4_csv
from zoa_lib.survey.catalogs import CatalogError, read_catalog
from zoa_lib.survey.shards import CATALOG_DTYPE, ShardError

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_shards import make_shard, write_mocks  # noqa: E402

ZOA = [sys.executable, "-m", "zoa_lib.cli"]
FUZZ = settings(derandomize=True, deadline=None, max_examples=25, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
FEW = settings(FUZZ, max_examples=8)
MANY = settings(FUZZ, max_examples=60)  # random offsets and bytes: cheap, and where the bugs hide


# --------------------------------------------------------------------------- helpers
def one_line(msg: str) -> bool:
    """One line also for str.splitlines (no \\x0b, \\x0c, \\x1c-\\x1e, \\x85, \\u2028 either)."""
    return bool(msg.strip()) and len(msg.splitlines()) == 1


def outcome(fn, *args, **kw):
    """("ok", result) or ("error", ZoaError); any other exception propagates (a failure)."""
    try:
        return "ok", fn(*args, **kw)
    except ZoaError as e:
        assert one_line(str(e)), repr(str(e))
        return "error", e


def expect(cls, fn, *args, where=(), **kw) -> str:
    """Call ``fn``: it must raise ``cls`` (a ZoaError) with a one-line message containing
    every string of ``where``; return the message."""
    kind, res = outcome(fn, *args, **kw)
    assert kind == "error", f"{fn.__name__} accepted bad input (returned {type(res).__name__})"
    assert isinstance(res, cls), f"{type(res).__name__}: {res}"
    msg = str(res)
    for w in where:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


class Quiet(tuple):
    """A fixture's tuple with a short repr (hypothesis prints the arguments of a failing example)."""

    def __repr__(self):
        return f"<{type(self[0]).__name__} of {len(self[0])}, ...>"


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cli(*args, env=None):
    return subprocess.run(ZOA + [str(a) for a in args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def assert_cli_error(args, where=(), env=None):
    """Exit 2, one stderr line naming ``where``, no traceback; ``--debug`` shows one."""
    r = cli(*args, env=env)
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    err = r.stderr.strip()
    assert one_line(err) and "Traceback" not in err, err
    for w in where:
        assert w in err, (w, err)
    d = cli("--debug", *args, env=env)
    assert d.returncode != 0 and "Traceback" in d.stderr
    return r


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- catalogs
N_ROWS = 24
PRE = 3  # write_cf4_csv's preamble lines: the header is line 4, row r on line 5 + r


def synthetic_catalog(n: int = N_ROWS, seed: int = 5) -> np.ndarray:
    """A small catalog of :data:`CATALOG_DTYPE`: isotropic, 10–75 Mpc/h, |v| ≤ 600 km/s,
    σ_v = 0.2 cz (≈ 0.43 mag)."""
    g = np.random.default_rng(seed)
    cat = np.zeros(n, CATALOG_DTYPE)
    l, b = g.uniform(0, 360, n), np.degrees(np.arcsin(g.uniform(-1, 1, n)))
    d, v = g.uniform(10, 75, n), np.clip(g.normal(0, 300, n), -600, 600)
    cat["SGX"], cat["SGY"], cat["SGZ"] = sky.galactic_to_sg(l, b, d)
    cat["l"], cat["b"], cat["d_obs"], cat["d_true"], cat["v_r_true"] = l, b, d, d, v
    cat["cz"] = distances.observed_cz(d, v)
    cat["sigma_v"] = 0.2 * cat["cz"]
    # what a reader derives from (cz, d): the WF15 estimator at the luminosity distance of d
    cat["v_r_obs"] = distances.watkins_feldman_velocity(cat["cz"].astype(np.float64),
                                                     distances.luminosity_from_comoving_distance(d))
    return cat


@pytest.fixture(scope="module")
def table(work):
    """(text, header tokens) of a valid EDD-layout table, glon/glat only: every column but pgc is used."""
    p = write_cf4_csv(work / "base.csv", synthetic_catalog(), coords="galactic")
    text = p.read_text()
    lines = text.split("\n")
    return Quiet((text, [t.strip() for t in lines[PRE].split(",")]))


class QuietArray(np.ndarray):
    def __repr__(self):
        return f"<catalog of {self.size} rows>"


@pytest.fixture(scope="module")
def cat0():
    return synthetic_catalog().view(QuietArray)


USED = ("Vcmb", "DM", "eDM", "glon", "glat")


def rows_of(text):
    lines = text.rstrip("\n").split("\n")
    return lines[:PRE + 1], [ln.split(", ") for ln in lines[PRE + 1:]]


def join(head, rows, sep=", "):
    return "\n".join(head + [sep.join(r) for r in rows]) + "\n"


def put(work, name, content) -> Path:
    p = work / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


def cell_strategy():
    return st.tuples(st.integers(0, N_ROWS - 1), st.sampled_from(USED))


def set_cell(text, header, r, col, token):
    head, rows = rows_of(text)
    rows[r][header.index(col)] = token
    return join(head, rows), PRE + 2 + r


@MANY
@given(cut=st.integers(0, 10 ** 6))
def test_catalog_truncated_at_any_byte_reads_or_fails_in_one_line(work, table, cut):
    text, _ = table
    raw = text.encode()
    p = put(work, "cut.csv", raw[:cut % (len(raw) + 1)])
    kind, res = outcome(read_catalog, p)
    if kind == "ok":  # a cut on a row boundary (or inside the last number) is still a table
        cat, rep = res
        assert 1 <= len(cat) <= N_ROWS and rep.n_kept == len(cat)
    else:
        assert str(p) in str(res)


@FUZZ
@given(r=st.integers(0, N_ROWS - 1), k=st.integers(1, 5), tail=st.sampled_from(["", ",", ", "]))
def test_catalog_truncated_inside_a_row_names_the_line(work, table, r, k, tail):
    text, _ = table
    head, rows = rows_of(text)
    content = join(head, rows[:r]) + ", ".join(rows[r][:k]) + tail
    p = put(work, "cutrow.csv", content)
    msg = expect(CatalogError, read_catalog, p, where=(str(p), f"line {PRE + 2 + r}"))
    assert "fields" in msg or "missing value" in msg


@FUZZ
@given(delim=st.sampled_from([";", "|", ":", "/", ";\t"]), whole=st.booleans(), r=st.integers(0, N_ROWS - 1))
def test_catalog_wrong_delimiter(work, table, delim, whole, r):
    text, _ = table
    head, rows = rows_of(text)
    p = work / "delim.csv"
    if whole:  # the whole table: no header can be found
        head[PRE] = head[PRE].replace(", ", delim)
        put(work, p.name, join(head, rows, sep=delim))
        expect(CatalogError, read_catalog, p, where=(str(p), "no header line"))
    else:  # one row
        put(work, p.name, join(head, rows[:r]) + delim.join(rows[r]) + "\n" + join([], rows[r + 1:]))
        expect(CatalogError, read_catalog, p, where=(str(p), f"line {PRE + 2 + r}", "fields"))


@FUZZ
@given(i=st.integers(0, 5), j=st.integers(0, 5), case=st.sampled_from([str, str.upper, str.lower, str.swapcase]))
def test_catalog_duplicate_column(work, table, i, j, case):
    assume(i != j)
    text, header = table
    head, rows = rows_of(text)
    new = list(header)
    new[j] = case(header[i])
    head[PRE] = ", ".join(new)
    p = put(work, "dup.csv", join(head, rows))
    expect(CatalogError, read_catalog, p, where=(str(p), "duplicate column"))


@FUZZ
@given(col=st.sampled_from(USED))
def test_catalog_missing_column(work, table, col):
    text, header = table
    j = header.index(col)
    head, rows = rows_of(text)
    head[PRE] = ", ".join(h for k, h in enumerate(header) if k != j)
    p = put(work, "miss.csv", join(head, [[x for k, x in enumerate(r) if k != j] for r in rows]))
    expect(CatalogError, read_catalog, p, where=(str(p), "missing column", "header has"))


@FUZZ
@given(cell=cell_strategy(), tok=st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "+inf",
                                                  "1e999", "-1e400", "1" + "0" * 400]))
def test_catalog_nan_inf(work, table, cell, tok):
    text, header = table
    content, line = set_cell(text, header, *cell, tok)
    p = put(work, "nan.csv", content)
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}", f"column {cell[1]!r}", "not finite"))


@FUZZ
@given(r=st.integers(0, N_ROWS - 1),
       dm=st.one_of(st.floats(-1e308, -200.0), st.floats(44.0, 1e308)),
       dist=st.one_of(st.floats(-1e308, 0.0), st.floats(1e-300, 1e-46), st.floats(1e5, 1e308)),
       xyz=st.one_of(st.just((0.0, 0.0, 0.0)), st.tuples(*[st.floats(-1e-46, 1e-46)] * 3),
                     st.tuples(st.floats(3e3, 1e308), st.floats(-1e308, 1e308), st.floats(-1e308, 1e308))))
def test_catalog_zero_negative_or_absurd_distances(work, table, cat0, r, dm, dist, xyz):
    """0 (also: 0 once in the catalog's float32), negative, or beyond z = 1 where the
    distance–redshift relations of zoa_lib.survey.galaxies hold (DM ≳ 43.9 at H0 = 74.6)."""
    text, header = table
    content, line = set_cell(text, header, r, "DM", repr(dm))
    p = put(work, "dm.csv", content)
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}", "column 'DM'", "distance"))
    # a Dist (Mpc) table
    rows = [f"{i + 1}, {d:.4f}, 0.3, {cz:.2f}, {l:.5f}, {b:.5f}" for i, (d, cz, l, b) in
            enumerate(zip(cat0["d_obs"] / 0.746, cat0["cz"], cat0["l"], cat0["b"]))]
    rows[r] = f"{r + 1}, {dist!r}, 0.3, 3000, 10, 20"
    p = put(work, "dist.csv", "1PGC, Dist, e_DMzp, Vcmb, GLON, GLAT\n" + "\n".join(rows) + "\n")
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {r + 2}", "column 'Dist'", "distance"))
    # a positions table: a galaxy at the observer, or beyond z = 1
    rows = [f"{x:.4f},{y:.4f},{z:.4f},{v:.2f}" for x, y, z, v in
            zip(cat0["SGX"], cat0["SGY"], cat0["SGZ"], cat0["v_r_obs"])]
    rows[r] = ",".join(map(repr, xyz)) + ",100"
    p = put(work, "pos.csv", "SGX,SGY,SGZ,v_r\n" + "\n".join(rows) + "\n")
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {r + 2}", "column 'SGX'", "distance"))


@FUZZ
@given(r=st.integers(0, N_ROWS - 1),
       cz=st.one_of(st.floats(-1e308, catalogs.CZ_MIN * 1.0001), st.floats(catalogs.CZ_MAX * 1.0001, 1e308)),
       vr=st.one_of(st.floats(catalogs.V_PEC_MAX * 1.0001, 1e308), st.floats(-1e308, -catalogs.V_PEC_MAX * 1.0001)))
def test_catalog_absurd_velocities(work, table, cat0, r, cz, vr):
    text, header = table
    content, line = set_cell(text, header, r, "Vcmb", repr(cz))
    p = put(work, "cz.csv", content)
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}", "column 'Vcmb'", "cz ="))
    rows = [f"{x:.4f} {y:.4f} {z:.4f} {v:.2f} 150" for x, y, z, v in
            zip(cat0["SGX"], cat0["SGY"], cat0["SGZ"], cat0["v_r_obs"])]
    rows[r] = f"10 20 30 {vr!r} 150"
    p = put(work, "vr.txt", "# one realization\nSGX SGY SGZ Vpec e_v\n" + "\n".join(rows) + "\n")
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {r + 3}", "column 'Vpec'", "out of range"))


def _parses(tok: str) -> bool:
    s = tok.strip().strip('"').strip("'").strip()
    try:
        float(s)
        return True
    except ValueError:
        return False


GARBAGE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r,"),
                  min_size=1, max_size=10).filter(lambda s: not _parses(s))


@MANY
@given(cell=cell_strategy(), tok=GARBAGE)
def test_catalog_garbage_in_a_cell_names_the_line(work, table, cell, tok):
    """Any text in a used cell; also form feeds, NUL, U+2028 and quotes, which must neither
    split the line nor shift the line numbers."""
    text, header = table
    content, line = set_cell(text, header, *cell, tok)
    p = put(work, "garbage.csv", content)
    msg = expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}"))
    if "column" in msg:
        assert f"column {cell[1]!r}" in msg


@FUZZ
@given(sep=st.sampled_from(["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]),
       where=st.sampled_from(["comment", "pgc"]), r=st.integers(1, N_ROWS - 1), col=st.sampled_from(USED))
def test_catalog_unicode_line_separators_do_not_shift_line_numbers(work, table, sep, where, r, col):
    """Only \\n, \\r\\n and \\r end a line (as in an editor), not the form feeds and
    separators that str.splitlines also splits at."""
    text, header = table
    content, line = set_cell(text, header, r, col, "nan")
    lines = content.split("\n")
    if where == "comment":
        lines[1] = lines[1] + sep + " continued"
    else:
        lines[PRE + 1] = lines[PRE + 1].replace("1, ", "1" + sep + ", ", 1)
    p = put(work, "sep.csv", "\n".join(lines))
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}", f"column {col!r}"))


@FEW
@given(cell=cell_strategy(), n=st.integers(131_073, 300_000), ch=st.sampled_from("x9"))
def test_catalog_overlong_cell(work, table, cell, n, ch):
    text, header = table
    content, line = set_cell(text, header, *cell, ch * n)
    p = put(work, "long.csv", content)
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}"))


@FUZZ
@given(parts=st.lists(st.sampled_from(["", " ", "\t", "\n", "\r\n", "\r", "\x0c", "\ufeff", "# a comment",
                                       "! note", "% x", "-----", "=== | ===", ",,,"]), max_size=12))
def test_catalog_empty_or_blank_files(work, parts):
    p = put(work, "blank.csv", "".join(parts))
    expect(CatalogError, read_catalog, p, where=(str(p),))


@MANY
@given(off=st.integers(0, 10 ** 6), bad=st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xed\xa0\x80",
                                                         b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]),
       crlf=st.booleans())
def test_catalog_non_utf8_names_the_line(work, table, off, bad, crlf):
    text, _ = table
    raw = (text.replace("\n", "\r\n") if crlf else text).encode()
    off %= len(raw) + 1
    if crlf and raw[off - 1:off] == b"\r" and raw[off:off + 1] == b"\n":
        off -= 1  # not between \r and \n
    p = put(work, "latin.csv", raw[:off] + bad + raw[off:])
    line = raw[:off].count(b"\n") + 1
    expect(CatalogError, read_catalog, p, where=(str(p), f"line {line}:", "not UTF-8"))


@FUZZ
@given(blob=st.binary(max_size=3000))
def test_catalog_random_bytes(work, blob):
    p = put(work, "random.dat", blob)
    expect(CatalogError, read_catalog, p, where=(str(p),))


def test_catalog_utf16_and_an_hdf5_file_are_not_tables(work, table):
    text, _ = table
    p = put(work, "utf16.csv", text.encode("utf-16"))
    expect(CatalogError, read_catalog, p, where=(str(p), "line 1:", "not UTF-8"))
    h5 = work / "shard-as-table.h5"
    shards.write_shard(h5, make_shard(8, 1, 0))
    raw = h5.read_bytes()
    p = put(work, "half.h5", raw[:len(raw) // 2])
    expect(CatalogError, read_catalog, p, where=(str(p), "not UTF-8"))
    p = put(work, "folder.csv", b"")
    p.unlink()
    p.mkdir()
    expect(CatalogError, read_catalog, p, where=(str(p), "folder"))


@FUZZ
@given(n=st.integers(1, N_ROWS), spelling=st.sampled_from(["edd", "vizier"]), spaces=st.booleans(),
       coords=st.sampled_from(["both", "galactic", "equatorial"]), crlf=st.booleans(), bom=st.booleans(),
       tabs=st.booleans(), perm=st.permutations(range(6)), extra=st.sampled_from(["", "Name", "T17", "flag"]),
       notes=st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30),
                      max_size=3))
@example(n=3, spelling="edd", spaces=True, coords="both", crlf=False, bom=False, tabs=False, perm=list(range(6)),
         extra="", notes=["H0 = {h0} {", "100% {}"])  # a preamble is written as given, not str.format-ted
def test_catalog_valid_tables_always_read(work, cat0, n, spelling, spaces, coords, crlf, bom, tabs, perm,
                                          extra, notes):
    sub = cat0[:n]
    p = write_cf4_csv(work / "valid.csv", sub, spelling=spelling, spaces=spaces, coords=coords,
                      preamble=[f"# {s}" for s in notes])
    lines = p.read_text().rstrip("\n").split("\n")
    k = len(notes)
    table_ = [[t.strip() for t in ln.split(",")] for ln in lines[k:]]
    ncol = len(table_[0])
    order = [i for i in perm if i < ncol] + list(range(6, ncol))
    table_ = [[r[i] for i in order] for r in table_]
    if extra:  # an unused column of any non-numeric text
        table_ = [r + ([extra] if i == 0 else [f"x{i}"]) for i, r in enumerate(table_)]
    sep = "\t" if tabs else (", " if spaces else ",")
    content = "\n".join(lines[:k] + [sep.join(r) for r in table_]) + "\n"
    if crlf:
        content = content.replace("\n", "\r\n")
    p = put(work, "valid2.csv", ("\ufeff" if bom else "") + content)
    cat, rep = read_catalog(p)
    assert len(cat) == n and rep.n_kept == n and not rep.dropped
    assert rep.header_line == k + 1
    assert np.allclose(cat["d_obs"], sub["d_obs"], rtol=1e-5)
    for ax in ("SGX", "SGY", "SGZ"):
        assert np.allclose(cat[ax], sub[ax], atol=2e-3)
    assert np.allclose(cat["v_r_obs"], sub["v_r_obs"], atol=0.1)


@FUZZ
@given(xyz=st.lists(st.tuples(st.floats(-150, 150), st.floats(-150, 150), st.floats(-150, 150),
                              st.floats(-5000, 5000), st.floats(0, 2000)), min_size=1, max_size=20),
       sigma=st.booleans(), sep=st.sampled_from([",", " ", "\t", " , "]))
def test_catalog_valid_positions_always_read(work, xyz, sigma, sep):
    xyz = [t for t in xyz if math.hypot(*t[:3]) > 1e-3]
    assume(xyz)
    head = ["SGX", "SGY", "SGZ", "v_r"] + (["sigma_v"] if sigma else [])
    rows = [sep.join(repr(v) for v in t[:len(head)]) for t in xyz]
    p = put(work, "posvalid.csv", sep.join(head) + "\n" + "\n".join(rows) + "\n")
    cat, rep = read_catalog(p)
    assert rep.kind == "positions" and len(cat) == len(xyz)
    assert np.allclose(cat["SGX"], [t[0] for t in xyz], atol=1e-3)
    assert np.allclose(cat["v_r_obs"], [t[3] for t in xyz], atol=1e-3)
    assert np.allclose(cat["d_obs"], [math.hypot(*t[:3]) for t in xyz], rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- profiles
CI_TEXT = (config.PROFILES_DIR / "ci.yml").read_text()
CI = yaml.safe_load(CI_TEXT)


def _leaves(cls=config.Profile, prefix=""):
    """(dotted key, annotation) of every scalar field of the profile tree, and the sections."""
    hints = typing.get_type_hints(cls)
    out, sections = [], []
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(tp):
            sections.append(key)
            sub, _ = _leaves(tp, key + ".")
            out += sub
        else:
            out.append((key, tp))
    return out, sections


LEAVES, SECTIONS = _leaves()
LEAF_TYPES = dict(LEAVES)
NUMBER = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=False, allow_infinity=False))
TEXT = st.text(max_size=12)
LISTS = st.lists(st.integers(), max_size=3)
MAPS = st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), min_size=1, max_size=2)


def wrong_value(tp):
    """Values of a wrong type for annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return st.one_of(st.integers(), TEXT, st.floats(), LISTS, st.none())
    if tp is int:
        return st.one_of(TEXT, st.floats().filter(lambda x: not float(x).is_integer()), st.just(2.0), LISTS,
                         MAPS, st.booleans(), st.none())
    if tp is float or (origin is not None and type(None) in args and float in args):
        return st.one_of(TEXT, LISTS, MAPS, st.booleans())
    if tp is str:
        return st.one_of(NUMBER, LISTS, MAPS, st.booleans(), st.none())
    if origin is not None and type(None) in args and str in args:  # an optional path
        return st.one_of(NUMBER, LISTS, MAPS, st.booleans())
    if origin is typing.Literal:
        return st.one_of(TEXT.filter(lambda s: s not in args), NUMBER, LISTS, st.none())
    if origin is tuple:
        return st.one_of(TEXT, NUMBER, MAPS, st.lists(TEXT, min_size=1, max_size=3))
    raise AssertionError(tp)


def set_key(d: dict, dotted: str, value) -> dict:
    d = json.loads(json.dumps(d))
    node = d
    *parts, last = dotted.split(".")
    for p_ in parts:
        node = node.setdefault(p_, {})
    node[last] = value
    return d


def dump(d) -> str:
    return yaml.safe_dump(d, sort_keys=False, allow_unicode=False)


@FUZZ
@given(section=st.sampled_from([""] + SECTIONS),
       key=st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.booleans()),
       value=st.one_of(st.integers(), TEXT))
@example(section="", key="a\nb", value=1).via("a line break in a key")
@example(section="training", key="x\u2028y", value=1).via("a Unicode line separator in a key")
def test_profile_unknown_key(work, section, key, value):
    names = {f.name for f in dataclasses.fields(config.Profile)} if not section else \
        {k.split(".")[-1] for k, _ in LEAVES if k.rsplit(".", 1)[0] == section} | \
        {s.split(".")[-1] for s in SECTIONS if s.rsplit(".", 1)[0] == section}
    assume(key not in names)
    d = json.loads(json.dumps(CI))
    node = d if not section else d.setdefault(section, {})
    node[key] = value
    p = put(work, "unknown.yml", dump(d))
    msg = expect(ProfileError, load_profile, p, where=("unknown key",))
    if isinstance(key, str) and key.isprintable():
        assert (f"{section}.{key}" if section else key) in msg


@FUZZ
@given(leaf=st.sampled_from([k for k, _ in LEAVES]), data_=st.data())
def test_profile_wrong_type(work, leaf, data_):
    value = data_.draw(wrong_value(LEAF_TYPES[leaf]))
    p = put(work, "wrongtype.yml", dump(set_key(CI, leaf, value)))
    expect(ProfileError, load_profile, p, where=(leaf,))


@FUZZ
@given(section=st.sampled_from(SECTIONS), value=st.one_of(st.integers(), st.text(min_size=1, max_size=5),
                                                          st.lists(st.integers(), min_size=1, max_size=3)))
def test_profile_section_not_a_mapping(work, section, value):
    p = put(work, "section.yml", dump(set_key(CI, section, value)))
    expect(ProfileError, load_profile, p, where=(section, "mapping"))


FLOAT_LEAVES = [k for k, tp in LEAVES if tp is float or (typing.get_origin(tp) not in (None, tuple) and float in
                                                         typing.get_args(tp))]
INT_LEAVES = [k for k, tp in LEAVES if tp is int]


@FUZZ
@given(leaf=st.sampled_from(FLOAT_LEAVES + ["evaluation.bulk_flow_radii", "evaluation.distance_shells"]),
       bad=st.sampled_from([".nan", ".inf", "-.inf", ".NaN", "1.0e+400", "-1.0e+999"]), i=st.integers(0, 2))
def test_profile_nan_inf(work, leaf, bad, i):
    d = json.loads(json.dumps(CI))
    if leaf.startswith("evaluation.") and leaf.split(".")[1] in ("bulk_flow_radii", "distance_shells"):
        vals = [10.0, 20.0, 30.0]
        vals[i] = "@BAD@"
        d = set_key(d, leaf, vals)
        where = (leaf + f"[{i}]", "finite")
    else:
        d = set_key(d, leaf, "@BAD@")
        where = (leaf, "finite")
    p = put(work, "nan.yml", dump(d).replace("'@BAD@'", bad))
    expect(ProfileError, load_profile, p, where=where)


@FUZZ
@given(leaf=st.sampled_from(FLOAT_LEAVES + INT_LEAVES), e=st.integers(19, 500), neg=st.booleans())
def test_profile_huge_numbers(work, leaf, e, neg):
    """Integers beyond 64 bits (any float field: beyond float range) are an error naming the key."""
    if leaf in FLOAT_LEAVES:
        e = max(e, 309)
    v = -(10 ** e) if neg else 10 ** e
    p = put(work, "huge.yml", dump(set_key(CI, leaf, v)))
    expect(ProfileError, load_profile, p, where=(leaf,))


@MANY
@given(off=st.integers(0, 10 ** 6), ch=st.sampled_from(["[", "{", "]", "}", ":", "\t", "&", "*", "!", "%",
                                                        "@", "`", '"', "'", "|", ">", "- ", "? ", ": :",
                                                        "\ufeff", "{{", "!!python/object:os.system "]))
def test_profile_text_mutations_load_or_fail_in_one_line(work, off, ch):
    off %= len(CI_TEXT) + 1
    p = put(work, "mut.yml", CI_TEXT[:off] + ch + CI_TEXT[off:])
    kind, res = outcome(load_profile, p)
    if kind == "error":
        assert "mut" in str(res)


@FUZZ
@given(off=st.integers(0, 10 ** 6), ch=st.sampled_from([chr(c) for c in (0, 1, 7, 8, 0x0e, 0x1b, 0x7f)] +
                                                      ["\ufffe", "\uffff"]))
def test_profile_control_characters_name_the_line(work, off, ch):
    off %= len(CI_TEXT) + 1
    p = put(work, "ctrl.yml", CI_TEXT[:off] + ch + CI_TEXT[off:])
    line = CI_TEXT[:off].count("\n") + 1
    expect(ProfileError, load_profile, p, where=(str(p), f"line {line}"))


CI_LINES = CI_TEXT.split("\n")
INDENTED = [i for i, ln in enumerate(CI_LINES) if ln.startswith("  ")]
KEYED = [i for i, ln in enumerate(CI_LINES) if re.match(r"^\s*[a-z_]+:", ln)]


@FUZZ
@given(i=st.sampled_from(INDENTED), how=st.sampled_from(["tab", "unclosed [", "unclosed {", "quote", "dedent"]))
def test_profile_yaml_syntax_errors_name_the_line(work, i, how):
    lines = list(CI_LINES)
    ln = lines[i]
    if how == "tab":
        lines[i] = "\t" + ln.lstrip()
    elif how == "unclosed [":
        lines[i] = ln.replace(": ", ": [", 1)
    elif how == "unclosed {":
        lines[i] = ln.replace(": ", ": {", 1)
    elif how == "quote":
        lines[i] = ln.replace(": ", ': "', 1)
    else:
        lines[i] = "   " + ln  # deeper than its siblings
    p = put(work, "syntax.yml", "\n".join(lines))
    msg = expect(ProfileError, load_profile, p, where=(str(p), "line "))
    n = int(re.search(r"line (\d+)", msg).group(1))
    assert i + 1 <= n <= len(lines) + 1


@FUZZ
@given(i=st.sampled_from(KEYED))
def test_profile_duplicate_keys(work, i):
    """PyYAML keeps the last of two equal keys; a profile must not silently drop one."""
    lines = list(CI_LINES)
    lines.insert(i + 1, lines[i].split(":")[0] + ": " + lines[i].split(":", 1)[1].strip())
    p = put(work, "dupkey.yml", "\n".join(lines))
    key = lines[i].split(":")[0].strip()
    expect(ProfileError, load_profile, p, where=(str(p), f"duplicate key {key!r}", f"line {i + 2}"))


@FUZZ
@given(value=st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=20), st.booleans(),
                       st.lists(st.integers(), max_size=4), st.just("")))
def test_profile_top_level_not_a_mapping(work, value):
    p = put(work, "top.yml", dump(value))
    expect(ProfileError, load_profile, p, where=(str(p),))


@settings(FEW, max_examples=4)
@given(n=st.sampled_from([200, 5000]), kind=st.sampled_from(["[", "{a: "]))
def test_profile_deeply_nested(work, n, kind):
    """Deeper than Python's recursion limit: PyYAML's composer recurses per level."""
    close = "]" if kind == "[" else "}"
    p = put(work, "deep.yml", "box: " + kind * n + close * n + "\n")
    expect(ProfileError, load_profile, p, where=(str(p),))


@FUZZ
@given(off=st.integers(0, 10 ** 6), bad=st.sampled_from([b"\xff", b"\xc3(", b"\x80", b"\xed\xa0\x80"]))
def test_profile_non_utf8_names_the_line(work, off, bad):
    raw = CI_TEXT.encode()
    off %= len(raw) + 1
    p = put(work, "latin.yml", raw[:off] + bad + raw[off:])
    line = raw[:off].count(b"\n") + 1
    expect(ProfileError, load_profile, p, where=(str(p), f"line {line}", "UTF-8"))


def test_profile_path_is_a_folder_or_unreadable(work):
    d = work / "folder.yml"
    d.mkdir()
    expect(ProfileError, load_profile, d, where=(str(d),))


KEYS = st.one_of(st.sampled_from([k for k, _ in LEAVES] + SECTIONS),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=15))
VALUES = st.one_of(st.text(max_size=15), st.sampled_from(["[1,", "{a", "'x", "*alias", "&a [", "[[[", "]", "{}",
                                                          "!!python/object:os.system", "a: b: c", "- - -",
                                                          ".nan", "1e999", "0x10", "~", "", "\t", "%TAG"]))


@MANY
@given(items=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_profile_random_overrides_apply_or_fail_in_one_line(items):
    args = [f"{k}={v}" for k, v in items]
    kind, res = outcome(lambda: load_profile("ci", parse_overrides(args)))
    if kind == "ok":
        assert res.name == "ci" or any(k == "name" for k, _ in items)


@FUZZ
@given(key=st.sampled_from([k for k, _ in LEAVES]),
       value=st.sampled_from(["[1,", "{a", "'x", "*alias", "&a [", "]", "a: b: c", "!!python/name:os.system"]))
def test_profile_override_value_not_yaml(key, value):
    expect(ProfileError, lambda: load_profile("ci", parse_overrides([f"{key}={value}"])), where=(key,))


@FUZZ
@given(key=st.sampled_from(["", ".", "box.", ".grid", "box..grid", "box.grid.x", "training.epochs.", "seed.x",
                            "=", "box = 3"]))
def test_profile_bad_override_keys(key):
    expect(ProfileError, lambda: load_profile("ci", parse_overrides([f"{key}=3"])))


@FUZZ
@given(epochs=st.integers(1, 500), zoa_b=st.floats(0, 89.99), grid=st.sampled_from([8, 16]),
       augment=st.booleans(), desc=st.text(max_size=40), seed=st.integers(0, 2 ** 63 - 1),
       radii=st.lists(st.floats(0.1, 80), min_size=1, max_size=5), shuffle=st.randoms())
def test_profile_valid_random_profiles_always_load(work, epochs, zoa_b, grid, augment, desc, seed, radii, shuffle):
    d = json.loads(json.dumps(CI))
    for k, v in (("training.epochs", epochs), ("survey.zoa_b", zoa_b), ("box.grid", grid),
                 ("training.augment", augment), ("description", desc), ("seed", seed),
                 ("evaluation.bulk_flow_radii", radii)):
        d = set_key(d, k, v)
    keys = list(d)
    shuffle.shuffle(keys)
    p = put(work, "ci.yml", dump({k: d[k] for k in keys}))
    prof = load_profile(p)
    assert (prof.training.epochs, prof.survey.zoa_b, prof.box.grid, prof.training.augment) == \
        (epochs, zoa_b, grid, augment)
    assert prof.description == desc and prof.seed == seed and list(prof.evaluation.bulk_flow_radii) == radii
    again = put(work, "again.yml", prof.to_yaml())
    assert load_profile(again).to_dict() == prof.to_dict()


# --------------------------------------------------------------------------- shards
GRID = 8
DATASETS = ("inputs", "targets/delta", "targets/phi", "targets/velocity", "samples", "observers", "rotations",
            "box_index")


@pytest.fixture(scope="module")
def shard0(work):
    """(bytes, content sha256) of a valid 2-mock shard at 8³."""
    p = work / "shard0.h5"
    s = shards.write_shard(p, make_shard(GRID, 2, seed=3))
    return Quiet((p.read_bytes(), s))


def read_all(path, grid=GRID):
    """Everything a consumer does with a shard: validate, read, checksum."""
    shards.validate_shard(path, grid=grid)
    shards.read_shard(path)
    return shards.content_checksum(path)


def shard_copy(work, shard0, name="bad.h5") -> Path:
    p = work / name
    p.write_bytes(shard0[0])
    return p


def replace_dataset(path, name, arr):
    with h5py.File(path, "a") as f:
        del f[name]
        f.create_dataset(name, data=arr)


@FUZZ
@given(name=st.sampled_from(DATASETS + ("targets", "catalog")))
def test_shard_missing_dataset(work, shard0, name):
    p = shard_copy(work, shard0)
    with h5py.File(p, "a") as f:
        del f[name]
    if name == "catalog":  # optional: a shard of inputs and targets only (e.g. repacked) still reads
        assert read_all(p)
        return
    expect(ShardError, read_all, p, where=(str(p), "missing dataset", repr(name) if name != "targets" else "targets/"))


SHAPES = {"inputs": (2, 8, 8, 8, 2), "targets/delta": (2, 8, 8, 8), "targets/phi": (2, 8, 8, 8),
          "targets/velocity": (2, 8, 8, 8, 3), "samples": (2,), "observers": (2, 3), "rotations": (2, 3, 3),
          "box_index": (2,)}
DTYPES = {"inputs": "f4", "targets/delta": "f4", "targets/phi": "f4", "targets/velocity": "f4", "samples": "i8",
          "observers": "f8", "rotations": "i1", "box_index": "i8"}


@FUZZ
@given(name=st.sampled_from(DATASETS), shape=st.lists(st.integers(0, 9), max_size=6).map(tuple))
def test_shard_wrong_shape(work, shard0, name, shape):
    assume(shape != SHAPES[name])
    p = shard_copy(work, shard0)
    replace_dataset(p, name, np.zeros(shape, DTYPES[name]))
    msg = expect(ShardError, read_all, p, where=(str(p), "shape"))
    assert name in msg or "inputs" in msg


@FUZZ
@given(grid=st.sampled_from([4, 16, 32, 128]))
def test_shard_wrong_grid(work, shard0, grid):
    p = shard_copy(work, shard0)
    expect(ShardError, read_all, p, grid=grid, where=(str(p), f"profile expects {grid}^3"))


def accepted_dtype(name, dt) -> bool:
    """float32 for inputs and targets; any float for observers, any integer for the indices."""
    if DTYPES[name] == "f4":
        return dt == np.float32
    if name == "observers":
        return dt.kind == "f"
    return dt.kind in "iu"


@FUZZ
@given(name=st.sampled_from(DATASETS + ("catalog",)),
       dtype=st.sampled_from(["f8", "f2", "i4", "i1", "u1", "c8", "?", "S4", "i8"]))
def test_shard_wrong_dtype(work, shard0, name, dtype):
    if name == "catalog":  # a plain array instead of the compound catalog table
        arr = np.zeros(3, dtype)
    else:
        assume(not accepted_dtype(name, np.dtype(dtype)))
        arr = np.zeros(SHAPES[name], dtype)
    p = shard_copy(work, shard0)
    replace_dataset(p, name, arr)
    expect(ShardError, read_all, p, where=(str(p), "dtype", name))


@MANY
@given(cut=st.integers(0, 10 ** 9))
def test_shard_truncated_at_any_byte(work, shard0, cut):
    raw = shard0[0]
    p = work / "cut.h5"
    p.write_bytes(raw[:cut % len(raw)])
    expect(ShardError, read_all, p, where=(str(p),))


@MANY
@given(off=st.integers(0, 10 ** 9), blob=st.binary(min_size=1, max_size=64))
def test_shard_overwritten_bytes_read_or_fail_in_one_line(work, shard0, off, blob):
    """Bit rot anywhere: either a ShardError, or the shard reads and its content checksum
    tells whether the data changed."""
    raw = bytearray(shard0[0])
    off %= len(raw)
    raw[off:off + len(blob)] = blob
    p = work / "rot.h5"
    p.write_bytes(bytes(raw[:len(shard0[0])]))
    kind, res = outcome(read_all, p)
    if kind == "error":
        assert str(p) in str(res)


@FUZZ
@given(blob=st.binary(max_size=4096), signature=st.booleans())
def test_shard_random_bytes(work, blob, signature):
    p = work / "random.h5"
    p.write_bytes((b"\x89HDF\r\n\x1a\n" if signature else b"") + blob)
    expect(ShardError, read_all, p, where=(str(p),))


@FUZZ
@given(text=st.text(max_size=200))
def test_shard_text_file_named_h5(work, text):
    p = work / "text.h5"
    p.write_text(text, encoding="utf-8")
    expect(ShardError, read_all, p, where=(str(p),))


def test_shard_zero_length_missing_and_folder(work):
    p = work / "empty.h5"
    p.write_bytes(b"")
    expect(ShardError, read_all, p, where=(str(p),))
    expect(ShardError, read_all, work / "nope.h5", where=("nope.h5", "not found"))
    d = work / "dir.h5"
    d.mkdir(exist_ok=True)
    expect(ShardError, read_all, d, where=(str(d),))


@FUZZ
@given(name=st.sampled_from(["inputs", "targets/delta", "samples"]), what=st.sampled_from(["group", "type"]))
def test_shard_object_of_the_wrong_kind(work, shard0, name, what):
    p = shard_copy(work, shard0)
    with h5py.File(p, "a") as f:
        del f[name]
        if what == "group":
            f.create_group(name)
        else:
            f[name] = np.dtype("f4")  # a committed datatype, not a dataset
    expect(ShardError, read_all, p, where=(str(p), name))


@pytest.fixture(scope="module")
def mock_folder(work):
    """Four valid shards at 16³ with a manifest, laid out as the ci profile's plan."""
    folder = work / "mocks"
    write_mocks(folder, grid=16, splits=(("train", 2, 8), ("val", 1, 4), ("test", 1, 4)))
    return folder


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=6)


def manifest_copy(work, mock_folder, name="mf"):
    folder = work / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    shutil.copy(mock_folder / shards.MANIFEST, folder / shards.MANIFEST)
    (folder / "shard-0000.h5").symlink_to(mock_folder / "shard-0000.h5")
    return folder


@FUZZ
@given(cut=st.integers(0, 10 ** 6), ins=st.sampled_from(["", "{", "}", ",", "]", "x", "\x00", "'"]),
       off=st.integers(0, 10 ** 6))
def test_manifest_not_json(work, mock_folder, cut, ins, off):
    folder = manifest_copy(work, mock_folder)
    text = (folder / shards.MANIFEST).read_text()
    text = text[:cut % (len(text) + 1)]
    off %= len(text) + 1
    (folder / shards.MANIFEST).write_text(text[:off] + ins + text[off:])
    for fn in (shards.read_manifest, shards.shard_paths, lambda f: mock_set.check_shards(paths=[f / "shard-0000.h5"])):
        kind, res = outcome(fn, folder)
        if kind == "error":
            assert str(folder / shards.MANIFEST) in str(res)


@FUZZ
@given(where=st.sampled_from(["top", "shards", "row", "start", "stop", "sha256", "bytes", "split"]), value=JSON)
def test_manifest_wrong_structure(work, mock_folder, where, value):
    folder = manifest_copy(work, mock_folder)
    man = json.loads((folder / shards.MANIFEST).read_text())
    if where == "top":
        man = value
    elif where == "shards":
        man["shards"] = value
    elif where == "row":
        man["shards"]["shard-0000.h5"] = value
    else:
        man["shards"]["shard-0000.h5"][where] = value
    (folder / shards.MANIFEST).write_text(json.dumps(man))
    results = [outcome(shards.read_manifest, folder), outcome(shards.shard_paths, folder),
               outcome(mock_set.check_shards, paths=[folder / "shard-0000.h5"])]
    for kind, res in results:
        if kind == "error":
            assert str(folder / shards.MANIFEST) in str(res)
    structural = (where == "top" and not isinstance(value, dict)) or \
        (where == "shards" and not isinstance(value, dict)) or (where == "row" and not isinstance(value, dict)) \
        or (where in ("start", "stop") and (isinstance(value, bool) or not isinstance(value, int)))
    if structural:
        assert results[0][0] == "error", value


@FUZZ
@given(n=st.integers(1, 3), seed=st.integers(0, 2 ** 32 - 1), verify=st.sampled_from(["checksum", "quick"]))
def test_shard_valid_random_shards_always_read(work, n, seed, verify):
    folder = work / "valid"
    folder.mkdir(exist_ok=True)
    s = make_shard(GRID, n, seed, start=seed % 1000)
    p = folder / "shard-0000.h5"
    digest = shards.write_shard(p, s)
    shards.write_manifest(folder, {"shards": {p.name: {"split": "train", "start": seed % 1000,
                                                     "stop": seed % 1000 + n, "n": n, "sha256": digest,
                                                     "bytes": p.stat().st_size}}})
    assert read_all(p) == digest
    back = shards.read_shard(p)
    np.testing.assert_array_equal(back.inputs, s.inputs)
    np.testing.assert_array_equal(back.samples, s.samples)
    checks = mock_set.check_shards(paths=[p], verify=verify)
    assert [c.ok for c in checks] == [True]


def test_write_grid_leaves_an_existing_file_unless_complete(work, cat0):
    """A grid that cannot be written (wrong shape, a folder in the way, an error while writing)
    leaves the file already there byte for byte, and no temporary behind."""
    prof = load_profile("ci")
    out = work / "grid-keep.h5"
    inputs = catalogs.grid(cat0, prof)
    catalog_files.write_grid(out, inputs, prof)
    before = sha(out)
    expect(CatalogError, catalog_files.write_grid, out, inputs[:8], prof, where=(str(out), "shape"))
    assert sha(out) == before
    with pytest.raises(TypeError):  # an attr h5py cannot store: fails inside the HDF5 write
        catalog_files.write_grid(out, inputs, prof, bad_attr=object())
    assert sha(out) == before
    assert not [p for p in work.iterdir() if p.name.startswith(".tmp-grid-keep")]
    (work / "grid-dir.h5").mkdir(exist_ok=True)
    expect(CatalogError, catalog_files.write_grid, work / "grid-dir.h5", inputs, prof, where=("folder",))
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["n_gal"][()], inputs[..., 0])
        assert f["v_pec"].attrs["units"] == "km/s" and f.attrs["box_size"] == prof.box.size


def test_shards_check_without_shards_and_with_a_bad_manifest(work, mock_folder, monkeypatch, capsys):
    from zoa_lib.cli import main

    monkeypatch.setenv("ZOA_DATA", str(work / "no-data"))
    assert main(["shards", "check", "--profile", "ci"]) == 2
    err = capsys.readouterr().err.strip()
    assert one_line(err) and "no mock shards" in err and "zoa mocks --profile ci" in err
    folder = manifest_copy(work, mock_folder, "mf-bad")
    (folder / shards.MANIFEST).write_text('{"shards": {"shard-0000.h5": {"start": 0}}}')
    res = mock_set.check_shards(paths=[folder / "shard-0000.h5"])
    assert [(Path(r.path).name, r.ok) for r in res] == [(shards.MANIFEST, False), ("shard-0000.h5", True)]
    assert "shards.shard-0000.h5.stop" in res[0].reason


# --------------------------------------------------------------------------- the CLI
def test_cli_catalog_reports_grids_and_fails_in_one_line(work, table, cat0):
    """``zoa catalog``: the report; --grid-output writes n_gal, v_pec; a bad table exits 2 and leaves an
    existing grid file as it was."""
    text, header = table
    good = put(work, "cli-good.csv", text)
    out = work / "cli-grid.h5"
    r = cli("catalog", good, "--profile", "ci", "--grid-output", out, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n_rows"] == rep["n_kept"] == N_ROWS and rep["columns"]["velocity"] == "Vcmb"
    assert rep["distance"]["min"] > 0 and 0 < rep["sky"]["coverage"] <= 1
    with h5py.File(out, "r") as f:
        assert f["n_gal"].shape == (16, 16, 16) and f["v_pec"].shape == (16, 16, 16)
        assert f["n_gal"].attrs["units"] and f["v_pec"].attrs["units"] == "km/s"
        assert int(f["n_gal"][()].sum()) == rep["grid"]["n_in_cube"] == N_ROWS - rep["grid"]["n_outside"]
        assert f.attrs["profile"] == "ci"
    before = sha(out)
    bad, line = set_cell(text, header, 3, "DM", "nan")
    bad = put(work, "cli-bad.csv", bad)
    assert_cli_error(["catalog", bad, "--profile", "ci", "--grid-output", out],
                     where=(str(bad), f"line {line}", "column 'DM'"))
    assert sha(out) == before
    r = cli("catalog", bad, "--profile", "ci", "--drop-bad")
    assert r.returncode == 0 and f"dropped line {line}, column 'DM'" in r.stdout and "sky" in r.stdout
    garbage = put(work, "cli-garbage.csv", b"\x89HDF\r\n\x1a\n\x00\x00\xff")
    assert_cli_error(["catalog", garbage, "--grid-output", out], where=(str(garbage), "not UTF-8"))
    assert sha(out) == before


def test_cli_profile_errors_are_one_line(work):
    line = CI_LINES.index("seed: 1234") + 1
    p = put(work, "cli-ctrl.yml", CI_TEXT.replace("seed: 1234", "seed: 12\x0034"))
    assert_cli_error(["profile", "show", p], where=(str(p), f"line {line}"))
    assert_cli_error(["profile", "show", "ci", "-p", "box.grid=[1,"], where=("box.grid",))


def test_cli_shards_check(work, mock_folder):
    """``zoa shards check``: all good → 0; a truncated shard among valid ones → 2, one line per
    bad shard on stdout, and the valid shards and the manifest keep their bytes."""
    folder = work / "cli-mocks" / "ci" / "mocks"
    shutil.copytree(mock_folder, folder)
    env = {"ZOA_DATA": str(work / "cli-mocks")}
    r = cli("shards", "check", "--profile", "ci", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 shard(s)" in r.stdout
    bad = folder / "shard-0002.h5"
    bad.write_bytes(bad.read_bytes()[:5000])
    before = {p.name: sha(p) for p in folder.iterdir()}
    r = assert_cli_error(["shards", "check", "--profile", "ci"], where=("1 of 4",), env=env)
    assert [ln for ln in r.stdout.splitlines() if "shard-" in ln] == [ln for ln in r.stdout.splitlines()
                                                                     if str(bad) in ln]
    assert len([ln for ln in r.stdout.splitlines() if str(bad) in ln]) == 1
    paths = sorted(folder.glob("shard-*.h5"))
    r = cli("shards", "check", *paths, "--verify", "quick", "--json", env=env)
    assert r.returncode == 2 and one_line(r.stderr.strip())
    res = json.loads(r.stdout)
    assert [x["ok"] for x in res] == [p != bad for p in paths]
    assert {p.name: sha(p) for p in folder.iterdir()} == before
    (folder / shards.MANIFEST).write_text('{"shards": [1, 2')
    r = assert_cli_error(["shards", "check", "--profile", "ci"], env=env)
    assert str(folder / shards.MANIFEST) in r.stdout
