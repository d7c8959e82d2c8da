// Console behaviour. No inline scripts or handlers: everything is wired here (CSP-ready).
(function () {
  "use strict";
  // The groups pane folds on narrow screens behind its toggle button.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".groups-toggle");
    if (!toggle) return;
    var pane = toggle.closest(".groups-pane");
    var open = pane.classList.toggle("is-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
