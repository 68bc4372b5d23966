// Reloads the page every few seconds while it shows an ongoing execution:
// the server marks such a page with `data-refresh` (seconds) on <body>.
// A reload waits while the tab is hidden, while text is selected, and
// while a form field has the focus, so that nothing the reader does is
// lost.
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh"));
  if (!seconds || seconds < 1) {
    return;
  }
  function busy() {
    if (document.hidden) {
      return true;
    }
    var selection = window.getSelection ? String(window.getSelection()) : "";
    if (selection.length > 0) {
      return true;
    }
    var active = document.activeElement;
    return !!active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }
  window.setInterval(function () {
    if (!busy()) {
      window.location.reload();
    }
  }, seconds * 1000);
})();
