// mailwarden console: the little behaviour htmx does not cover. No inline handlers anywhere (the CSP
// forbids them): this file binds by class name.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("button.nojs").forEach(function (button) { button.hidden = true; });
});
document.addEventListener("change", function (event) {
  var box = event.target;
  if (box.matches && box.matches("input.select-all")) {
    document.querySelectorAll("input[name='" + box.dataset.for + "']").forEach(function (item) {
      item.checked = box.checked;
    });
  }
});
