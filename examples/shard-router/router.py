#!/usr/bin/env python3
"""An example client of the ShardSplit routing ConfigMap (docs/routing.md).

Standard library only, so it can be copied into any application as the
reference for what a router must compute. Library use:

    router = Router(lambda: Routing.from_path("/etc/routing"))
    host, port, database, table = router.routing.tables_for_write(key)[0]
    ...on a write refused by the fence (is_fence_error): router.reload(), retry

Command line:

    router.py --configmap NAME [-n NS] KEY...   shard and target of each key
    router.py --path DIR_OR_FILE KEY...         the same, from a mounted volume
    router.py --selftest
"""

import argparse
import json
import os
import subprocess
import sys
import zlib

PHASES = ("source", "dual-write", "shards")

# MySQL character set names and the Python codecs that give the same bytes.
# MySQL's latin1 is Windows-1252, not ISO 8859-1.
MYSQL_CHARSETS = {
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "latin1": "cp1252",
    "ascii": "ascii",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf32": "utf-32-be",
    "gbk": "gbk",
    "sjis": "shift_jis",
}


def canonical_bytes(key, charset="utf-8", char_column=False):
    """The bytes SQL's CRC32(col) sees for this key.

    Integers hash as decimal ASCII text, so every language agrees without a
    shared binary layout, and the integer 42 and the string '42' land on the
    same shard. Strings hash as stored: in the column's character set, and
    for a CHAR column without the trailing spaces the server strips.
    """
    if isinstance(key, bool):
        # bool is an int in Python; True would silently hash as "True"'s 1.
        raise TypeError("a sharding key cannot be a bool")
    if isinstance(key, int):
        return str(key).encode("ascii")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, str):
        if char_column:
            key = key.rstrip(" ")
        return key.encode(MYSQL_CHARSETS.get(charset.lower(), charset))
    raise TypeError(f"unsupported sharding key type {type(key).__name__}")


def integer_key(key):
    """mod and range need an integer; decimal text (e.g. from argv) is one."""
    if isinstance(key, bool):
        raise TypeError("a sharding key cannot be a bool")
    if isinstance(key, int):
        return key
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("ascii")
    if isinstance(key, str):
        return int(key.strip())
    raise TypeError(f"mod and range need an integer key, not {type(key).__name__}")


def is_fence_error(sqlstate, message):
    """A write refused by the fence triggers: reload the routing and retry."""
    return str(sqlstate) == "45000" and str(message).startswith("switchyard:")


class Routing:
    """One generation of the routing, as published in routing.json."""

    def __init__(self, doc, charset="utf-8", char_column=False):
        self.doc = doc
        self.generation = int(doc["generation"])
        self.phase = doc["phase"]
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}")
        rule = doc["rule"]
        self.column = rule["column"]
        self.algorithm = rule["algorithm"]
        self.shards = int(rule["shards"])
        if self.algorithm not in ("hash", "mod", "range"):
            raise ValueError(f"unknown algorithm {self.algorithm!r}")
        self.ranges = [
            (
                int(r["shard"]),
                None if r.get("from") is None else int(r["from"]),
                None if r.get("to") is None else int(r["to"]),
            )
            for r in rule.get("ranges") or []
        ]
        if self.algorithm == "range" and len(self.ranges) != self.shards:
            raise ValueError(f"{len(self.ranges)} ranges for {self.shards} shards")
        self.source = doc["source"]
        # By the entry's own number: the list order is not the contract.
        self.shard_map = {int(s["shard"]): s for s in doc["shards"]}
        if sorted(self.shard_map) != list(range(self.shards)):
            raise ValueError(f"shard map {sorted(self.shard_map)} does not cover 0..{self.shards - 1}")
        self.charset = charset
        self.char_column = char_column

    @classmethod
    def from_path(cls, path, **kw):
        """A mounted ConfigMap volume (a directory holding routing.json) or the file."""
        if os.path.isdir(path):
            path = os.path.join(path, "routing.json")
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f), **kw)

    @classmethod
    def from_configmap(cls, name, namespace=None, kubectl="kubectl", **kw):
        cmd = [kubectl, "get", "configmap", name, "-o", "json"]
        if namespace:
            cmd += ["-n", namespace]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        data = json.loads(out).get("data") or {}
        if "routing.json" not in data:
            raise ValueError(f"ConfigMap {name} has no routing.json")
        routing = cls(json.loads(data["routing.json"]), **kw)
        # The operator writes all keys in one update; a mismatch means the
        # object was edited by hand.
        if data.get("generation") not in (None, str(routing.generation)):
            raise ValueError(
                f"ConfigMap {name}: generation {data['generation']} but routing.json says {routing.generation}"
            )
        return routing

    def shard_for(self, key):
        if self.algorithm == "hash":
            # zlib.crc32 is unsigned in Python 3, as MySQL's CRC32() is.
            return zlib.crc32(canonical_bytes(key, self.charset, self.char_column)) % self.shards
        k = integer_key(key)
        if self.algorithm == "mod":
            # Python's % is already non-negative for a positive divisor; the
            # spelled-out form is the one other languages and SQL need.
            return ((k % self.shards) + self.shards) % self.shards
        for shard, lo, hi in self.ranges:
            if (lo is None or lo <= k) and (hi is None or k < hi):
                return shard
        raise ValueError(f"key {k} is in no range")

    def tables_for_write(self, key):
        """Where a write of this key goes: a list of (host, port, database, table).

        One entry in every phase: in dual-write the operator, not the client,
        writes the old table. A list keeps callers' write loops unchanged if
        that ever differs.
        """
        if self.phase == "source":
            t = self.source
        else:
            t = self.shard_map[self.shard_for(key)]
        return [(t["host"], int(t["port"]), t["database"], t["table"])]


class Router:
    """Holds the newest routing seen and never goes back to an older one.

    A watch, a kubelet-refreshed volume and a cache can each lag the others,
    so a reload may return an older generation than one already acted on.
    """

    def __init__(self, load):
        self._load = load
        self.routing = load()

    def reload(self):
        r = self._load()
        if r.generation > self.routing.generation:
            self.routing = r
        return self.routing


# --- self-test -------------------------------------------------------------

# CRC32 values to check against: the IEEE check value, and values that
# MariaDB 10.11's CRC32() returned for the same input (see README.md).
KNOWN_CRC32 = [
    (b"123456789", 0xCBF43926),
    (b"hello", 907060870),
    (b"12345", 3421846044),
    (b"cust-7", 3161818102),
    (b"-42", 3156848342),
]

# Keys as a client holds them, and what MariaDB 10.11's CRC32(col) returned
# for the same value stored in a column of that type (see README.md).
KNOWN_KEY_CRC32 = [
    (-42, {}, 3156848342),  # BIGINT
    (2**64 - 1, {}, 3221115162),  # BIGINT UNSIGNED
    ("é  ", {"charset": "latin1", "char_column": True}, 198489425),  # CHAR(10) latin1
    ("é", {"charset": "utf8mb4"}, 235179326),  # VARCHAR utf8mb4
    (b"\x00\xff", {}, 1826356594),  # VARBINARY
]


def _doc(phase="dual-write", generation=3, algorithm="hash", shards=4, ranges=None):
    def place(table):
        return {
            "cluster": "shop",
            "service": "shop-primary",
            "host": "shop-primary.prod.svc",
            "port": 3306,
            "database": "shop",
            "table": table,
        }

    rule = {"column": "customer_id", "algorithm": algorithm, "shards": shards}
    if ranges is not None:
        rule["ranges"] = ranges
    return {
        "generation": generation,
        "phase": phase,
        "rule": rule,
        "source": place("orders"),
        "shards": [dict(place(f"orders_{i}"), shard=i) for i in range(shards)],
    }


def selftest():
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    for data, crc in KNOWN_CRC32:
        check(f"crc32({data!r})", zlib.crc32(data), crc)
    for key, kw, crc in KNOWN_KEY_CRC32:
        check(f"crc32 of key {key!r} {kw}", zlib.crc32(canonical_bytes(key, **kw)), crc)
    check("canonical -42", canonical_bytes(-42), b"-42")
    check("canonical 2**64-1", canonical_bytes(2**64 - 1), b"18446744073709551615")
    check("canonical str", canonical_bytes("cust-7"), b"cust-7")
    check("canonical latin1", canonical_bytes("é", charset="latin1"), b"\xe9")
    check("canonical utf8mb4", canonical_bytes("é", charset="utf8mb4"), b"\xc3\xa9")
    check("canonical CHAR", canonical_bytes("ab  ", char_column=True), b"ab")
    check("canonical bytes", canonical_bytes(b"\x00\xff"), b"\x00\xff")
    try:
        canonical_bytes(True)
        failures.append("a bool key was accepted")
    except TypeError:
        pass

    h = Routing(_doc())
    # MariaDB: SELECT CRC32(12345) % 4, CRC32('cust-7') % 4 gave 0, 2.
    check("hash 12345 % 4", h.shard_for(12345), 0)
    check("hash 'cust-7' % 4", h.shard_for("cust-7"), 2)
    check("hash: int and its text agree", h.shard_for(-42), h.shard_for("-42"))
    check("hash 'hello' % 4", h.shard_for("hello"), 2)

    m = Routing(_doc(algorithm="mod"))
    # MariaDB's MOD(MOD(k, 4) + 4, 4) gave 1, 0, 3, 3 for -7, -8, -1, 2**64-1.
    for k, want in [(7, 3), (-7, 1), (-8, 0), (0, 0), (-1, 3), ("-7", 1), (2**64 - 1, 3)]:
        check(f"mod {k!r} % 4", m.shard_for(k), want)

    # Shard numbers out of list order, to catch a client that uses positions.
    r = Routing(
        _doc(
            algorithm="range",
            shards=3,
            ranges=[
                {"shard": 2, "from": "1000", "to": None},
                {"shard": 0, "from": None, "to": "0"},
                {"shard": 1, "from": "0", "to": "1000"},
            ],
        )
    )
    for k, want in [(-(2**63), 0), (-1, 0), (0, 1), (999, 1), (1000, 2), (2**63 - 1, 2)]:
        check(f"range {k}", r.shard_for(k), want)

    src = Routing(_doc(phase="source"))
    check("source phase writes the old table", src.tables_for_write(5), [("shop-primary.prod.svc", 3306, "shop", "orders")])
    dual = Routing(_doc(phase="dual-write"))
    check(
        "dual-write writes one shard",
        dual.tables_for_write("hello"),
        [("shop-primary.prod.svc", 3306, "shop", "orders_2")],
    )
    check("shards phase writes one shard", Routing(_doc(phase="shards")).tables_for_write("hello"), dual.tables_for_write("hello"))

    seq = iter([_doc(generation=3), _doc(generation=2, phase="source"), _doc(generation=4, phase="shards")])
    router = Router(lambda: Routing(next(seq)))
    check("an older generation is ignored", router.reload().generation, 3)
    check("a newer generation is taken", router.reload().phase, "shards")

    check("fence error", is_fence_error("45000", "switchyard: moved to MySQLCluster db"), True)
    check("other 45000", is_fence_error("45000", "app trigger"), False)

    for f in failures:
        print("FAIL", f)
    print(f"selftest: {'ok' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0


def main(argv=None):
    p = argparse.ArgumentParser(description="Route keys by a ShardSplit routing ConfigMap (docs/routing.md).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--configmap", help="ConfigMap name, read with kubectl")
    src.add_argument("--path", help="mounted ConfigMap directory, or a routing.json file")
    p.add_argument("-n", "--namespace", help="namespace of the ConfigMap")
    p.add_argument("--kubectl", default=os.environ.get("KUBECTL", "kubectl"))
    p.add_argument("--charset", default="utf-8", help="the key column's character set (MySQL or Python name)")
    p.add_argument("--char", action="store_true", help="the key column is CHAR (trailing spaces are not stored)")
    p.add_argument("--selftest", action="store_true", help="check the algorithms and exit")
    p.add_argument("keys", nargs="*", metavar="KEY", help="keys; decimal text hashes the same as the integer")
    a = p.parse_args(argv)
    if a.selftest:
        return selftest()
    if not (a.configmap or a.path) or not a.keys:
        p.error("give --configmap NAME or --path PATH, and at least one KEY")
    kw = {"charset": a.charset, "char_column": a.char}
    try:
        if a.path:
            routing = Routing.from_path(a.path, **kw)
        else:
            routing = Routing.from_configmap(a.configmap, a.namespace, a.kubectl, **kw)
    except subprocess.CalledProcessError as e:
        print(f"router.py: kubectl failed: {e.stderr.strip()}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"router.py: cannot load the routing: {e!r}", file=sys.stderr)
        return 1
    print(f"generation {routing.generation}, phase {routing.phase}, "
          f"{routing.algorithm} on {routing.column} over {routing.shards} shards")
    rc = 0
    for key in a.keys:
        try:
            targets = ", ".join(f"{h}:{port} {db}.{t}" for h, port, db, t in routing.tables_for_write(key))
            print(f"{key}\tshard {routing.shard_for(key)}\twrite {targets}")
        except (TypeError, ValueError) as e:
            print(f"{key}\terror: {e}")
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
