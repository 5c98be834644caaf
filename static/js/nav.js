// The main navigation on a phone: a Menu button folds the links (aria-expanded says whether they are
// shown; Escape folds them again and returns to the button). Without JavaScript the links stay open.
(function () {
  "use strict";
  var button = document.querySelector(".nav-toggle");
  var header = document.querySelector(".site-header");
  if (!button || !header) return;
  var links = document.getElementById(button.getAttribute("aria-controls"));
  if (!links) return;
  header.classList.add("nav-folds");
  button.hidden = false;

  function show(open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    header.classList.toggle("nav-open", open);
  }

  button.addEventListener("click", function () { show(button.getAttribute("aria-expanded") !== "true"); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
      show(false);
      button.focus();
    }
  });
  show(false);
})();
