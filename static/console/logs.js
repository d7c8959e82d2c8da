// Log viewer: bring the capture the timeline was opened around into view.
// No inline scripts or handlers: wired from this file only (CSP-ready).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var focus = document.querySelector(".timeline .is-focus");
    if (focus && typeof focus.scrollIntoView === "function") {
      focus.scrollIntoView({ block: "nearest" });
    }
  });
})();
