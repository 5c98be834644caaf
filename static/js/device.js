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
  var boxes = document.querySelectorAll("details.rename");
  boxes.forEach(function (box) {
    box.addEventListener("toggle", function () {
      if (!box.open) return;
      boxes.forEach(function (other) { if (other !== box) other.open = false; });
      var input = box.querySelector("input[name=name]");
      if (input) { input.focus(); input.select(); }
    });
  });
})();
