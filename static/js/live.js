// Pages that update themselves (portal/live.py): the element with data-live-url names the endpoint;
// each [data-live=name] inside it is a region whose content the endpoint's fragments[name] replaces.
// Polls every data-live-interval ms (default 2500) while the tab is visible, with If-None-Match, so
// an unchanged page costs a 304. A region where the person is typing keeps their form (and focus); a
// region with input outside a form (ticked boxes) waits until it is submitted. Without JavaScript the
// page is the same, and a reload shows what changed.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-url]");
  if (!root || !window.fetch || !window.DOMParser) return;
  var url = root.getAttribute("data-live-url") + window.location.search;
  var interval = parseInt(root.getAttribute("data-live-interval"), 10) || 2500;
  var etag = null;
  var timer = null;
  var inFlight = false;

  function changed(control) {
    if (control.type === "hidden" || control.type === "submit" || control.type === "button") return false;
    if (control.type === "checkbox" || control.type === "radio") return control.checked !== control.defaultChecked;
    if (control.tagName === "SELECT") {
      for (var i = 0; i < control.options.length; i++) {
        if (control.options[i].selected !== control.options[i].defaultSelected) return true;
      }
      return false;
    }
    return control.value !== control.defaultValue;
  }

  // The forms of `region` the person is using (focus in it, or a changed field), or null when a
  // changed field is outside any form of the region (the region must wait).
  function formsInUse(region) {
    var kept = [];
    var active = document.activeElement;
    var controls = region.querySelectorAll("input, select, textarea");
    for (var i = 0; i < controls.length; i++) {
      var control = controls[i];
      if (control !== active && !changed(control)) continue;
      var form = control.closest("form");
      if (!form || !region.contains(form)) return null;
      if (kept.indexOf(form) < 0) kept.push(form);
    }
    if (active && region.contains(active) && active.closest("form") && kept.indexOf(active.closest("form")) < 0) {
      kept.push(active.closest("form"));
    }
    return kept;
  }

  function key(details) {
    var summary = details.querySelector("summary");
    return (summary && (summary.getAttribute("aria-label") || summary.textContent.trim())) || "";
  }

  // Replaces the content of `region` with `html`; false when it must wait (see formsInUse).
  function swap(region, html) {
    var kept = formsInUse(region);
    if (kept === null) return false;
    var fresh = document.createElement("div");
    fresh.innerHTML = html;
    var active = document.activeElement;
    var selection = null;
    if (active && region.contains(active) && typeof active.selectionStart === "number") {
      try { selection = [active.selectionStart, active.selectionEnd]; } catch (e) { selection = null; }
    }
    kept.forEach(function (form) {
      // Its twin in the fresh content: the form of the same id (several forms may post to one
      // action, as a device's command forms do), else of the same action.
      var twin = null;
      fresh.querySelectorAll("form").forEach(function (candidate) {
        if (twin) return;
        if (form.id ? candidate.id === form.id : candidate.getAttribute("action") === form.getAttribute("action")) {
          twin = candidate;
        }
      });
      if (twin) twin.parentNode.replaceChild(form, twin);
    });
    var open = [];
    region.querySelectorAll("details[open]").forEach(function (details) { open.push(key(details)); });
    fresh.querySelectorAll("details").forEach(function (details) {
      // Marked, so the page's own toggle handlers know the person did not just open it.
      if (open.indexOf(key(details)) >= 0) { details.setAttribute("data-live-restored", ""); details.open = true; }
    });
    region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
    if (active && region.contains(active) && document.activeElement !== active) {
      active.focus({ preventScroll: true });
      if (selection) { try { active.setSelectionRange(selection[0], selection[1]); } catch (e) { /* not text */ } }
    }
    return true;
  }

  function apply(fragments) {
    var all = true;
    Object.keys(fragments).forEach(function (name) {
      var region = root.querySelector('[data-live="' + name + '"]');
      if (region && !swap(region, fragments[name])) all = false;
    });
    return all;
  }

  function schedule() {
    window.clearTimeout(timer);
    if (!document.hidden) timer = window.setTimeout(poll, interval);
  }

  function poll() {
    if (document.hidden || inFlight) return;
    inFlight = true;
    var headers = { "Accept": "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (response) {
        if (response.status === 304) {
          // Nothing changed; the ETag may be a new one (the same rows under a new token).
          etag = response.headers.get("ETag") || etag;
          return null;
        }
        var type = response.headers.get("Content-Type") || "";
        if (!response.ok || type.indexOf("application/json") < 0) {
          // Logged out, or the device is no longer this person's: the page says so on a reload.
          throw new Error("stop");
        }
        var tag = response.headers.get("ETag");
        return response.json().then(function (body) {
          // A region that waited is asked for again next time (the old ETag gets a full answer).
          if (apply(body.fragments || {})) etag = tag;
        });
      })
      .then(function () { inFlight = false; schedule(); })
      .catch(function (error) {
        inFlight = false;
        if (error && error.message === "stop") return;
        schedule(); // a network blip: try again later
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { window.clearTimeout(timer); return; }
    poll();
  });
  schedule();
})();
