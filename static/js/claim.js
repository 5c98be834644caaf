// Claim form: shows the code as the label prints it (XXXXX-XXXXX) while it is typed.
// The server normalises again (case, spaces, dashes, O→0, I/L→1), so this is only a courtesy.
(function () {
  "use strict";
  var input = document.getElementById("id_code");
  if (!input) return;
  input.addEventListener("input", function () {
    var raw = input.value.toUpperCase().replace(/[\s_-]+/g, "");
    if (raw.length > 10 || /[^0-9A-Z]/.test(raw)) return; // another shape: leave it as typed
    var shown = raw.length > 5 ? raw.slice(0, 5) + "-" + raw.slice(5) : raw;
    if (shown !== input.value) input.value = shown;
  });
})();
