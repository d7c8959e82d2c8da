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

  // Live regions (thumbnail grid, assistance notifications) refresh by polling. Skip a refresh
  // while the keyboard focus is inside one (replacing it would throw the focus away) and while
  // the tab is hidden (nobody is looking; spare the server).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (!source || !source.hasAttribute("data-poll-pause")) return;
    var focused = document.activeElement;
    if (document.hidden || (focused && focused !== source && source.contains(focused))) {
      event.preventDefault();
    }
  });
})();
