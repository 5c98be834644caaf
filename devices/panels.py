"""The panels of the device page: each app registers its own, the page shows them in order.

The device page (`/devices/<uuid>/`, `devices:detail`, served by `devices.device_page`) belongs to
devices; it shows what apps above it know (linked applications, the ownership history) without
importing them (DESIGN.md, "Layering"): each app registers its panels here, once, in its
AppConfig.ready, and the page includes their templates. Registering a panel is one line:

    panels.register("applications", "apps/device_panels/applications.html", context=applications_context,
                    order=400, capability=access.MANAGE)

- `name`: the panel's own name; registering a name again replaces that panel.
- `template`: included in the page with the page's context: `device`, and what every shown panel's
  context function returned (the keys must not clash: a clash is an error, not a silent overwrite).
- `context`: a function `(request, device, **overrides) -> dict` of the keys its template reads, or
  None. `overrides` are what a panel's POST handler passes to re-render the page on an error (its
  bound form with the errors, `device_page(request, device, status=400, pin_form=form)`): they
  replace the panels' keys, and each context function gets them so it can skip building what is
  replaced. Each function makes the queries its panel needs, a fixed number at any size.
- `order`: where the panel stands in its slot, lowest first; the orders in use are below.
- `slot`: `ACTIONS` (a button in the page's head), `NOTICES` (a notice above the sections) or
  `SECTIONS` (the default).
- `wide`: a section as wide as the page; the others pair up, two to a row, in order.
- `capability`: the panel is shown only to who may do that with the device (`devices.access.may`):
  `SEE` by default; a panel whose forms need more says so.
- `live`: the panel's content changes without the viewer doing anything (status, values, charts,
  command statuses): the page refreshes it in place (`devices/live` answers it, `static/js/live.js`
  swaps it; `portal/live.py`). Its context function is then also called on every refresh that found
  a change, so it must not record anything (the support notice records a view: it is not live).
- `roles`: shown only to people in one of these roles (`devices.access.ROLES`: a panel for the people
  a device is shared with, a notice for support); None (the default): to every role the capability
  allows. Templates also get the viewer's `access_role`, to leave out what is only the owner's.

Orders in use (leave gaps; new panels take a free number):

| slot | order | panel | registered by |
|---|---|---|---|
| actions | 100, 200, 300 | rename; transfer, reset ownership | devices; claiming |
| notices | 100 | the open transfer offer | claiming |
| sections | 100, 200, 300 (wide) | connection, latest values, recent history (charts) | devices |
| sections | 400 | applications | apps |
| sections | 500 | commands | devices |
| sections | 600, 700 | hand over with a PIN, ownership history | claiming |
| notices | 50 | support looking under a grant (recorded) | devices (sharing) |
| sections | 800, 810, 820 (wide) | share, who has access, invitations; shared with you (others) | devices (sharing) |
| sections | 830, 840 | the maker's support (grant), access history | devices (sharing) |
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from . import access

ACTIONS = "actions"
NOTICES = "notices"
SECTIONS = "sections"
SLOTS = (ACTIONS, NOTICES, SECTIONS)


@dataclass(frozen=True)
class Panel:
    name: str
    template: str
    context: Callable[..., dict] | None
    order: int
    slot: str
    wide: bool
    capability: str
    roles: tuple | None
    live: bool = False


_panels: dict[str, Panel] = {}


def register(
    name, template, *, context=None, order, slot=SECTIONS, wide=False, capability=access.SEE, roles=None, live=False
):
    """Adds the panel `name` to the device page (see the module's docstring)."""
    if slot not in SLOTS:
        raise ImproperlyConfigured(f"Panel {name!r}: unknown slot {slot!r}; one of {SLOTS}.")
    if capability not in access.CAPABILITIES:
        raise ImproperlyConfigured(f"Panel {name!r}: unknown capability {capability!r}.")
    if roles is not None and not set(roles) <= set(access.ROLES):
        raise ImproperlyConfigured(f"Panel {name!r}: unknown roles {roles!r}; of {access.ROLES}.")
    _panels[name] = Panel(
        name, template, context, order, slot, wide, capability, tuple(roles) if roles else None, live
    )


def registered():
    """Every registered panel, in slot and order (for tests and the page)."""
    return sorted(_panels.values(), key=lambda panel: (SLOTS.index(panel.slot), panel.order, panel.name))


def _rows(sections):
    """The sections in rows: a wide one alone, the others two to a row (the page's grid)."""
    rows, pair = [], []
    for panel in sections:
        if panel.wide:
            if pair:
                rows.append({"wide": False, "panels": pair})
                pair = []
            rows.append({"wide": True, "panels": [panel]})
            continue
        pair.append(panel)
        if len(pair) == 2:
            rows.append({"wide": False, "panels": pair})
            pair = []
    if pair:
        rows.append({"wide": False, "panels": pair})
    return rows


def _shown(request, device, role):
    return [
        panel
        for panel in registered()
        if (panel.roles is None or role in panel.roles) and access.may(request.user, device, panel.capability)
    ]


def _panel_keys(request, device, shown, role, overrides):
    """The page's keys and those of every panel in `shown` (a clash is an error)."""
    # the page's own keys: a panel setting them is a clash
    context = {"device": device, "panels": None, "access_role": role}
    owners = {}
    for panel in shown:
        if panel.context is None:
            continue
        for key, value in panel.context(request, device, **overrides).items():
            if key in context:
                raise ImproperlyConfigured(
                    f"Panels {owners.get(key, 'page')!r} and {panel.name!r} both set {key!r} on the device page."
                )
            owners[key] = panel.name
            context[key] = value
    context.update(overrides)
    return context


def page_context(request, device, **overrides):
    """The device page's context: the panels `request.user` may see, in their slots, and their keys."""
    role = access.role_of(request.user, device)
    shown = _shown(request, device, role)
    context = _panel_keys(request, device, shown, role, overrides)
    context["panels"] = {
        ACTIONS: [panel for panel in shown if panel.slot == ACTIONS],
        NOTICES: [panel for panel in shown if panel.slot == NOTICES],
        "rows": _rows([panel for panel in shown if panel.slot == SECTIONS]),
    }
    return context


def live_context(request, device):
    """What a refresh of the device page renders: the live panels `request.user` may see (only
    their context functions run: nothing that records a view) and the page's keys."""
    role = access.role_of(request.user, device)
    shown = [panel for panel in _shown(request, device, role) if panel.live]
    context = _panel_keys(request, device, shown, role, {})
    context["panels"] = {"live": shown}
    return context
