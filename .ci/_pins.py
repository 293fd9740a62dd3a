"""Print pip requirement pins for the oldest versions pyproject.toml allows.

Usage: python .ci/_pins.py build|runtime|test ...   (one pin per line)

Each `name>=A.B` becomes `name==A.B.*` and `name>=A` becomes `name==A.0.*` (the oldest
series the metadata admits, newest patch release of it). `==` pins stay as written; a
requirement without a lower bound is an error: the stage could not test its minimum.
"""
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

with open("pyproject.toml", "rb") as f:
    meta = tomllib.load(f)

groups = {
    "build": meta["build-system"]["requires"],
    "runtime": meta["project"]["dependencies"],
}
groups.update(meta["project"].get("optional-dependencies", {}))

for group in sys.argv[1:]:
    for req in groups[group]:
        req = req.split(";")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", req)
        name, spec = m.group(1), m.group(2).replace(" ", "")
        if spec.startswith("=="):
            print(name + spec.split(",")[0])
            continue
        low = re.search(r">=([0-9][0-9.]*)", spec)
        if not low:
            sys.exit(f"_pins.py: {req!r} has no lower bound to test")
        parts = low.group(1).split(".")
        if len(parts) == 1:
            parts.append("0")
        print(f"{name}=={'.'.join(parts[:2])}.*")
