// Device list: sorting applies on change (the Apply button stays for pages without JS),
// and opening one rename box closes the others and focuses its field.
(function () {
  "use strict";
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });
  });
  // On the document (toggle does not bubble: capture), so rows the live refresh swaps in work too.
  document.addEventListener("toggle", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("details.rename") || !box.open) return;
    if (box.hasAttribute("data-live-restored")) { box.removeAttribute("data-live-restored"); return; }
    document.querySelectorAll("details.rename[open]").forEach(function (other) { if (other !== box) other.open = false; });
    var input = box.querySelector("input[name=name]");
    if (input) { input.focus(); input.select(); }
  }, true);
})();
