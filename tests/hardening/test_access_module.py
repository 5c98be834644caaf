"""`devices/access.py` is the only place that filters devices by user (DESIGN.md, "Access: one module
decides").

The code of `portal/`, `devices/`, `apps/` and `claiming/` (not migrations, not `devices/access.py`)
is read as Python, and every filter on an owner is listed: a keyword such as `owner=`, `owner_id=`,
`owner__email=` or `device__owner=` in a `.filter(`, `.exclude(`, `.get(`, `Q(`, `get_object_or_404(`…
call (`owner__isnull`, owned by nobody or somebody, is not a filter by user); SQL text comparing
`owner_id`; and a device's owner compared with a user in Python (`device.owner_id == user.pk`). What
remains is the short allow-list below, each entry saying why it is not a decision about access. A new
occurrence fails: ask `devices.access` (`devices_visible_to`, `device_for`, `may`) instead.
"""

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("portal", "devices", "apps", "claiming")
ACCESS_MODULE = "devices/access.py"

QUERY_CALLS = {"filter", "exclude", "get", "get_or_create", "update_or_create", "Q", "get_object_or_404",
               "get_list_or_404", "FilteredRelation"}  # fmt: skip
OWNER_KEY = re.compile(r"(?:^|__)owner(?:_id)?(?:__(?P<lookup>\w+))?$")
OWNER_SQL = re.compile(r"\bowner_id\s*(?:=|<>|!=|\bIN\b)", re.IGNORECASE)

# (file, what) -> how many times; each one an owner filter that is not about who may see a device.
ALLOWED = Counter({
    # Conditional UPDATEs of a change of owner: the row moves only while its owner is still the one
    # read (a race loses), and the rows this call won are read back by the owner it just set.
    ("claiming/ownership.py", "owner_id"): 1,
    ("claiming/ownership.py", "owner"): 1,
    ("claiming/services.py", "owner_id"): 1,  # device_release: reset only while still that owner's
    ("devices/protocol/services.py", "owner_id"): 1,  # provisioning: the token's first use, same owner
    # Application.owner: which applications a person may see is apps' own rule, not a device's.
    ("apps/selectors.py", "owner"): 1,
})  # fmt: skip


def _sources():
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "migrations" in path.parts or relative == ACCESS_MODULE:
                continue
            yield relative, ast.parse(path.read_text(), filename=relative)


def _call_name(call):
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _keys(call):
    for keyword in call.keywords:
        if keyword.arg is not None:
            yield keyword.arg
        elif isinstance(keyword.value, ast.Dict):  # .filter(**{"owner": user}), f-string keys too
            for key in keyword.value.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value
                elif isinstance(key, ast.JoinedStr):
                    yield "".join(part.value for part in key.values if isinstance(part, ast.Constant))


def _is_device_owner(node):
    """`device.owner_id`, `device.owner`, `transfer.device.owner_id`, `d.owner_id`…"""
    if not (isinstance(node, ast.Attribute) and node.attr in {"owner", "owner_id"}):
        return False
    base = node.value
    return (isinstance(base, ast.Name) and ("device" in base.id or base.id == "d")) or (
        isinstance(base, ast.Attribute) and base.attr == "device"
    )


def _is_user(node):
    return isinstance(node, ast.Attribute) and node.attr == "pk" or isinstance(node, ast.Name) and "user" in node.id


def owner_filters():
    """Every owner filter outside the access module: a Counter of (file, what), and where each is."""
    found, where = Counter(), []
    for relative, tree in _sources():
        for node in ast.walk(tree):
            hits = []
            if isinstance(node, ast.Call) and _call_name(node) in QUERY_CALLS:
                for key in _keys(node):
                    match = OWNER_KEY.search(key)
                    if match and match.group("lookup") != "isnull":
                        hits.append(key)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and OWNER_SQL.search(node.value):
                hits.append("SQL owner_id")
            elif isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                sides = [node.left, *node.comparators]
                if any(_is_device_owner(side) for side in sides) and any(_is_user(side) for side in sides):
                    hits.append("device owner == user")
            for hit in hits:
                found[relative, hit] += 1
                where.append(((relative, hit), f"{relative}:{node.lineno}: {hit}"))
    return found, where


def test_only_the_access_module_filters_devices_by_user():
    found, where = owner_filters()
    new = found - ALLOWED
    assert not new, (
        "A device filtered by its owner outside devices/access.py; ask devices.access instead "
        "(devices_visible_to, device_for, may):\n" + "\n".join(line for key, line in where if key in new)
    )


def test_the_allow_list_holds_nothing_stale():
    found, _ = owner_filters()
    assert not ALLOWED - found, f"Allowed but gone (remove from ALLOWED): {sorted((ALLOWED - found).elements())}"


def test_the_scan_sees_what_it_must_refuse():
    """The scanner is not blind: each form it refuses is refused in a sample."""
    samples = [
        "Device.objects.filter(owner=user)",
        "Device.objects.filter(owner_id=user.pk)",
        "AppLink.objects.exclude(device__owner=user)",
        "Count('links', filter=Q(links__device__owner=user))",
        "get_object_or_404(Device, pk=pk, owner=request.user)",
        "Device.objects.filter(**{'owner__email': email})",
    ]
    for sample in samples:
        call = ast.parse(sample).body[0].value
        calls = [node for node in ast.walk(call) if isinstance(node, ast.Call) and _call_name(node) in QUERY_CALLS]
        assert any((m := OWNER_KEY.search(key)) and m.group("lookup") != "isnull" for c in calls for key in _keys(c)), (
            sample
        )
    compare = ast.parse("device.owner_id == user.pk").body[0].value
    assert _is_device_owner(compare.left) and _is_user(compare.comparators[0])
    assert OWNER_SQL.search("UPDATE devices_device SET x = 1 WHERE owner_id = %s")
    assert not [key for key in _keys(ast.parse("Device.objects.filter(owner__isnull=True)").body[0].value)
                if OWNER_KEY.search(key).group("lookup") != "isnull"]  # fmt: skip
