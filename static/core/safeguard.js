// Shared behaviour for every page. Loaded with `defer`; no inline handlers anywhere (CSP).
(function () {
  "use strict";
  // Forms that need a confirmation carry data-confirm="question".
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
