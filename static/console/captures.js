// Captures: blurred screenshots revealed on request, zoom (fit / actual size) and copy buttons.
// Wired by event delegation from this file only: no inline scripts or handlers (CSP-ready).
(function () {
  "use strict";

  function announce(text) {
    var status = document.querySelector("[data-copy-status]");
    if (status) status.textContent = text;
  }

  function copyText(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      announce("Copied to the clipboard.");
      window.setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text) && done(); });
    } else if (fallbackCopy(text)) {
      done();
    }
  }

  function fallbackCopy(text) {
    // Plain-HTTP deployments have no async clipboard: copy through a selected, off-screen field.
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "visually-hidden";
    document.body.appendChild(field);
    field.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
    document.body.removeChild(field);
    return ok;
  }

  document.addEventListener("click", function (event) {
    var reveal = event.target.closest("[data-reveal]");
    if (reveal) {
      var shot = reveal.closest("[data-shot]");
      var image = shot.querySelector(".shot-image");
      // The full image is only fetched (and its viewing audited) once staff choose to see it.
      if (image.dataset.src) {
        image.src = image.dataset.src;
        image.removeAttribute("data-src");
      }
      shot.classList.remove("is-blurred");
      var zoom = shot.querySelector("[data-zoom]");
      zoom.disabled = false;
      reveal.remove();
      zoom.focus();
      return;
    }

    var zoomButton = event.target.closest("[data-zoom]");
    if (zoomButton) {
      var figure = zoomButton.closest("[data-shot]");
      if (figure.classList.contains("is-blurred")) return;
      var actual = figure.classList.toggle("is-actual");
      zoomButton.setAttribute("aria-pressed", actual ? "true" : "false");
      var label = zoomButton.querySelector("[data-zoom-label]");
      if (label) label.textContent = actual ? "Fit the screenshot to the page" : "Show at actual size";
      return;
    }

    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (!source) return;
      var text = "value" in source && source.tagName === "INPUT" ? source.value : source.textContent;
      copyText(text.trim(), copy);
    }
  });
})();
