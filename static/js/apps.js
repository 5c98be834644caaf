// Application pages: copy buttons, the Token prefix and own-Secret fields shown only when they
// apply, and a confirmation before rotating or removing. Every page works without it.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (development): the old way, through a selected off-screen field.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
        button.setAttribute("aria-live", "polite");
        window.setTimeout(function () { button.textContent = label; }, 2000);
      }, function () {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Press Ctrl+C";
      });
    });
  });

  function toggleWith(form, name, wanted, target) {
    var radios = form.querySelectorAll('input[name="' + name + '"]');
    var box = form.querySelector(target);
    if (!radios.length || !box) return;
    function update() {
      var checked = form.querySelector('input[name="' + name + '"]:checked');
      box.hidden = !checked || checked.value !== wanted;
    }
    radios.forEach(function (radio) { radio.addEventListener("change", update); });
    update();
  }

  document.querySelectorAll("form[data-app-form]").forEach(function (form) {
    toggleWith(form, "auth_style", "token", "[data-token-prefix]");
    toggleWith(form, "secret_choice", "own", "[data-own-secret]");
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
